"""Synthetic feeds with Faker: the same three feeds as the replay, at any volume and date range.

Starts from the warehouse's current products and countries when it can read them (so keys are valid),
otherwise from a generated catalogue. Every day it adds new products, changes some prices, deletes a few
products, now and then adds a country, delivers a share of lines late (timestamped on the previous day,
in today's batches) and writes a configurable share of bad rows. Each bad row is of a known kind, recorded
in the day's manifest, so tests and benchmarks know what the pipeline should quarantine.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import random
from dataclasses import dataclass

from faker import Faker

from pipeline import config
from pipeline.io import fs
from pipeline.sources import replay

log = logging.getLogger(__name__)

NEW_COUNTRY_POOL = ["Mexico", "Chile", "India", "Kenya", "New Zealand", "South Korea", "Morocco", "Peru",
                    "Vietnam", "Estonia", "Slovenia", "Uruguay"]
BAD_KINDS = ["bad_date", "bad_quantity", "bad_price", "missing_stock_code", "unparseable", "unknown_country",
             "future_product", "unknown_product"]


@dataclass
class SyntheticSpec:
    start: dt.date
    end: dt.date
    lines_per_day: int = 2000
    bad_row_share: float = 0.01
    late_line_share: float = 0.02
    new_products_per_day: int = 5
    price_change_share: float = 0.02
    deleted_products_per_day: int = 1
    new_country_every_days: int = 30
    customers: int = 2000
    seed: int = 42


@dataclass
class Catalogue:
    products: dict[str, tuple[str, str]]
    countries: dict[str, tuple[str, ...]]


def seed_catalogue(fake: Faker, size: int = 500) -> Catalogue:
    products = {}
    while len(products) < size:
        code = f"{fake.random_int(10000, 99999)}{fake.random_element(['', 'A', 'B', 'C'])}"
        products[code] = (f"{fake.color_name()} {fake.word()} {fake.word()}".upper(),
                          f"{fake.pyfloat(min_value=0.2, max_value=25, right_digits=2):.2f}")
    aliases = replay.load_country_aliases(config.resolve_path(config.reference().country_aliases))
    countries = {name: row for name in ("United Kingdom", "France", "Germany", "EIRE", "Netherlands")
                 if (row := replay.country_row(name, aliases))}
    return Catalogue(products, countries)


def _csv_line(fields: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _bad_line(kind: str, rng: random.Random, good: list, future_code: str) -> str:
    f = list(good)
    if kind == "bad_date":
        f[4] = rng.choice(["31/12/2011 25:00", "yesterday", "2011-13-45 10:00:00"])
    elif kind == "bad_quantity":
        f[3] = rng.choice(["six", "1.5", ""])
    elif kind == "bad_price":
        f[5] = rng.choice(["1,99", "abc", "2.5.5"])
    elif kind == "missing_stock_code":
        f[1] = ""
    elif kind == "unknown_country":
        f[7] = "Atlantis"
    elif kind == "future_product":
        f[1] = future_code
    elif kind == "unknown_product":
        f[1] = f"ZZ{rng.randint(1000, 9999)}"
    elif kind == "unparseable":
        return ",".join(str(x) for x in f[:5])
    return _csv_line(f)


def generate(spec: SyntheticSpec, root: str, catalogue: Catalogue | None = None) -> dict:
    """Write the feeds for every day of ``spec`` under ``<root>/landing``; return totals."""
    fake = Faker("en_GB")
    Faker.seed(spec.seed)
    rng = random.Random(spec.seed)
    cat = catalogue or seed_catalogue(fake)
    products = dict(cat.products)
    countries = dict(cat.countries)
    customers = [str(12000 + i) + ".0" for i in range(spec.customers)]
    invoice = 700000
    totals = {"days": 0, "lines": 0, "bad": 0, "late": 0}
    pending_new: dict[str, tuple[str, str]] = {}
    day = spec.start
    while day <= spec.end:
        # masters at 06:00: yesterday's announced products, price changes, deletions, maybe a new country
        products.update(pending_new)
        pending_new = {}
        for code in rng.sample(sorted(products), k=min(len(products), int(len(products) * spec.price_change_share))):
            desc, price = products[code]
            products[code] = (desc, f"{max(0.1, float(price or 1) * rng.uniform(0.8, 1.25)):.2f}")
        for code in rng.sample(sorted(products), k=min(spec.deleted_products_per_day, max(0, len(products) - 50))):
            del products[code]
        for _ in range(spec.new_products_per_day):
            products[f"9{rng.randint(10000, 99999)}N"] = (fake.catch_phrase().upper(), f"{rng.uniform(0.5, 20):.2f}")
        age = (day - spec.start).days
        if spec.new_country_every_days and age and age % spec.new_country_every_days == 0:
            for name in NEW_COUNTRY_POOL:
                if name not in countries and (row := replay.country_row(name, {})):
                    countries[name] = row
                    break
        future_code = f"8{rng.randint(10000, 99999)}F"
        pending_new[future_code] = (fake.catch_phrase().upper(), f"{rng.uniform(0.5, 20):.2f}")
        codes, names = sorted(products), sorted(countries)
        windows: dict[int, list[str]] = {w: [] for w in replay.WINDOW_HOURS}
        bad_kinds: dict[str, int] = {}
        n_late = 0
        for _ in range(spec.lines_per_day):
            if rng.random() < 0.25:
                invoice += 1
            hour = rng.randint(6, 20)
            ts = dt.datetime.combine(day, dt.time(hour, rng.randint(0, 59)))
            window = replay.window_of(hour)
            if rng.random() < spec.late_line_share:
                ts -= dt.timedelta(days=1)
                n_late += 1
            code = rng.choice(codes)
            qty = rng.choice([1, 2, 3, 4, 6, 12, 24])
            cancelled = rng.random() < 0.02
            good = [f"C{invoice}" if cancelled else str(invoice), code, products[code][0],
                    -qty if cancelled else qty, ts.strftime("%Y-%m-%d %H:%M:%S"), products[code][1] or "1.00",
                    "" if rng.random() < 0.2 else rng.choice(customers), rng.choice(names)]
            if rng.random() < spec.bad_row_share:
                kind = rng.choice(BAD_KINDS)
                bad_kinds[kind] = bad_kinds.get(kind, 0) + 1
                windows[window].append(_bad_line(kind, rng, good, future_code))
            else:
                windows[window].append(_csv_line(good))
        _write_day(root, day, windows, products, countries, bad_kinds, n_late)
        totals["days"] += 1
        totals["lines"] += sum(len(v) for v in windows.values())
        totals["bad"] += sum(bad_kinds.values())
        totals["late"] += n_late
        day += dt.timedelta(days=1)
    return totals


def _write_day(root, day, windows, products, countries, bad_kinds, n_late) -> None:
    paths = replay.landing_paths(root, day)
    for w, lines in windows.items():
        fs.write_text(paths["transactions"][w], "\n".join([replay.HEADER, *lines]) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(replay.PRODUCT_COLUMNS)
    writer.writerows((c, *products[c]) for c in sorted(products))
    fs.write_text(paths["products"], buf.getvalue())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(replay.COUNTRY_COLUMNS)
    writer.writerows(countries[n] for n in sorted(countries))
    fs.write_text(paths["countries"], buf.getvalue())
    fs.write_json(paths["manifest"], {
        "date": day.isoformat(), "source": "synthetic", "source_lines": sum(len(v) for v in windows.values()),
        "transactions": {replay.batch_id(day, w): {"path": paths["transactions"][w], "lines": len(v)}
                         for w, v in windows.items()},
        "products": {"path": paths["products"], "rows": len(products)},
        "countries": {"path": paths["countries"], "rows": len(countries), "unmapped": []},
        "bad_rows": bad_kinds, "late_lines": n_late,
    })


def catalogue_from_warehouse() -> Catalogue | None:
    """Current products and countries read over HiveServer2, or None when the warehouse is empty or down."""
    from pipeline.io import hs2

    try:
        products = hs2.query("SELECT stock_code, description, unit_price FROM ecommerce_db.products WHERE is_current")
        countries = hs2.query("SELECT source_country_name, country_code, iso3, country_name, region, continent "
                              "FROM ecommerce_db.countries")
    except Exception as exc:  # the generator still works on an empty machine
        log.warning("warehouse not readable (%s); using a generated catalogue", str(exc)[:200])
        return None
    if not products or not countries:
        return None
    return Catalogue({c: (d or "", "" if p is None else f"{p:f}") for c, d, p in products},
                     {r[0]: tuple(r) for r in countries})
