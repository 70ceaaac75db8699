import csv
import datetime as dt
import io

from pyspark.sql import functions as F

from pipeline.io import fs
from pipeline.sources import replay, synthetic
from pipeline.transforms import transactions as tx
from tests.unit.received import received


def generated(tmp_path, **kw):
    spec = synthetic.SyntheticSpec(dt.date(2012, 1, 1), dt.date(2012, 1, 3), lines_per_day=600,
                                   bad_row_share=0.05, new_country_every_days=2, **kw)
    root = (tmp_path / "wh").as_uri()
    return spec, root, synthetic.generate(spec, root)


def read_csv(uri):
    return list(csv.DictReader(io.StringIO(fs.read_text(uri))))


def test_feeds_land_for_every_day_with_the_requested_volume(tmp_path):
    spec, root, totals = generated(tmp_path)
    assert totals["days"] == 3 and totals["lines"] == 1800
    for i in range(3):
        manifest = fs.read_json(replay.landing_paths(root, spec.start + dt.timedelta(i))["manifest"])
        assert sum(b["lines"] for b in manifest["transactions"].values()) == 600
        assert set(manifest["transactions"]) == {replay.batch_id(spec.start + dt.timedelta(i), w)
                                                 for w in replay.WINDOW_HOURS}


def test_masters_evolve(tmp_path):
    spec, root, _ = generated(tmp_path)
    day1, day3 = (replay.landing_paths(root, spec.start + dt.timedelta(i)) for i in (0, 2))
    p1 = {r["stock_code"]: r["unit_price"] for r in read_csv(day1["products"])}
    p3 = {r["stock_code"]: r["unit_price"] for r in read_csv(day3["products"])}
    assert set(p3) - set(p1), "new products appear"
    assert set(p1) - set(p3), "products are deleted"
    assert any(p1[c] != p3[c] for c in set(p1) & set(p3)), "prices change"
    c1, c3 = ({r["country_code"] for r in read_csv(d["countries"])} for d in (day1, day3))
    assert c3 > c1, "a country is added"


def test_exactly_the_bad_rows_are_quarantined(spark, tmp_path):
    spec, root, _ = generated(tmp_path)
    day = spec.start + dt.timedelta(1)
    paths = replay.landing_paths(root, day)
    manifest = fs.read_json(paths["manifest"])
    lines = [(bid, ln) for bid in manifest["transactions"]
             for ln in fs.read_text(manifest["transactions"][bid]["path"]).splitlines()[1:] if ln]
    df = received(spark, lines)
    products = spark.createDataFrame([(r["stock_code"],) for r in read_csv(paths["products"])], "stock_code STRING")
    countries = spark.createDataFrame([(r["source_country_name"], r["country_code"])
                                       for r in read_csv(paths["countries"])],
                                      "source_country_name STRING, country_code STRING")
    classified = tx.classify_lines(df, products, countries, [])
    outcomes = {r.outcome: r["count"] for r in classified.groupBy("outcome").count().collect()}
    assert outcomes.get("quarantined", 0) == sum(manifest["bad_rows"].values()) > 0
    assert sum(outcomes.values()) == 600
    late = classified.where((F.col("outcome") == "loaded") & (F.to_date("invoice_ts") < F.lit(day))).count()
    assert 0 < late <= manifest["late_lines"]
