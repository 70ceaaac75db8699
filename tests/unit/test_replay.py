import csv
import datetime as dt
import gzip
import io

import pytest

from pipeline import config
from pipeline.io import fs
from pipeline.sources import replay


def line(code, desc, qty, ts, price, country="United Kingdom", invoice="536365", customer="17850.0"):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([invoice, code, desc, qty, ts, price, customer, country])
    return buf.getvalue()


@pytest.mark.parametrize(
    "lines, prev, expected",
    [
        # most frequent description and price among positive lines
        ([line("A", "X", 1, "2010-12-01 08:00:00", "2.5"), line("A", "Y", 1, "2010-12-01 09:00:00", "3"),
          line("A", "Y", 2, "2010-12-01 10:00:00", "3")], {}, {"A": ("Y", "3")}),
        # ties: description first in sort order, price the lowest
        ([line("A", "B", 1, "2010-12-01 08:00:00", "3"), line("A", "A", 1, "2010-12-01 09:00:00", "2")],
         {}, {"A": ("A", "2")}),
        # lines with quantity or price <= 0 do not count; code still seen (NULL price when never had one)
        ([line("A", "X", -1, "2010-12-01 08:00:00", "2.5"), line("A", "X", 1, "2010-12-01 08:00:00", "0")],
         {}, {"A": ("", "")}),
        # no qualifying line today: previous values kept; codes of earlier days carried over
        ([line("A", "NEW", 1, "2010-12-01 08:00:00", "0")], {"A": ("OLD", "1.5"), "B": ("BAG", "2")},
         {"A": ("OLD", "1.5"), "B": ("BAG", "2")}),
        # 2.50 and 2.5 are the same price
        ([line("A", "X", 1, "2010-12-01 08:00:00", "2.50"), line("A", "X", 1, "2010-12-01 08:00:00", "2.5"),
          line("A", "X", 1, "2010-12-01 08:00:00", "1")], {}, {"A": ("X", "2.5")}),
    ],
)
def test_next_products(lines, prev, expected):
    assert replay.next_products(prev, lines) == expected


def test_split_windows_by_invoice_hour_keeps_lines_verbatim():
    lines = [line("A", "X, Y", 1, "2010-12-01 03:59:00", "1"), line("A", "X", 1, "2010-12-01 04:00:00", "1"),
             line("A", "X", 1, "2010-12-01 23:10:00", "1")]
    windows = replay.split_windows(lines)
    assert windows == {0: [lines[0]], 4: [lines[1]], 8: [], 12: [], 16: [], 20: [lines[2]]}


@pytest.mark.parametrize("name, code", [("EIRE", "IE"), ("RSA", "ZA"), ("USA", "US"), ("Channel Islands", "XC"),
                                        ("European Community", "EU"), ("Unspecified", "XX"), ("France", "FR"),
                                        ("Czech Republic", "CZ")])
def test_country_reference(name, code):
    aliases = replay.load_country_aliases(config.resolve_path("conf/country_aliases.csv"))
    row = replay.country_row(name, aliases)
    assert row[0] == name and row[1] == code and all(row)


def test_unknown_country_name_has_no_reference_row():
    assert replay.country_row("Atlantis", {}) is None


def test_replay_day_writes_three_feeds_and_header_only_windows(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    lines = [line("A", "X", 1, "2010-12-01 09:00:00", "1"), line("B", "Y", 2, "2010-12-01 09:30:00", "2", "EIRE")]
    with gzip.open(src / "2010-12-01.csv.gz", "wt") as fh:
        fh.write("\n".join([replay.HEADER, *lines]) + "\n")
    root = (tmp_path / "wh").as_uri()
    aliases = config.resolve_path("conf/country_aliases.csv")
    replay.replay_days(src, root, [dt.date(2010, 12, 1)], aliases)
    paths = replay.landing_paths(root, dt.date(2010, 12, 1))
    assert fs.read_text(paths["transactions"][8]).splitlines() == [replay.HEADER, *lines]
    assert fs.read_text(paths["transactions"][0]).splitlines() == [replay.HEADER]
    products = list(csv.DictReader(io.StringIO(fs.read_text(paths["products"]))))
    assert [(p["stock_code"], p["unit_price"]) for p in products] == [("A", "1"), ("B", "2")]
    countries = list(csv.DictReader(io.StringIO(fs.read_text(paths["countries"]))))
    assert {c["country_code"] for c in countries} == {"GB", "IE"}
    manifest = fs.read_json(paths["manifest"])
    assert manifest["source_lines"] == 2 and manifest["transactions"]["tx_20101201_08"]["lines"] == 2
