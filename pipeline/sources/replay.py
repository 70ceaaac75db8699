"""Replay adapter: turns each trading day of the UCI Online Retail files into the three feeds.

For trading day D it writes, under ``<warehouse>/landing``:

* six transaction log files, one per 4-hour window [00,04) ... [20,24) by ``InvoiceDate``, holding the
  source lines verbatim (header-only when the window had no lines);
* the products snapshot (lands 06:00): every stock code seen on or before D; ``description`` is the most
  frequent description among D's lines with quantity > 0 and price > 0 (ties: first in sort order),
  ``unit_price`` the most frequent positive price among those lines (ties: the lowest); codes without
  such a line on D keep their previous values (empty when they never had one);
* the countries snapshot: every country name seen on or before D with ISO 3166 codes, region and
  continent (``country_converter``, overridden by ``conf/country_aliases.csv`` for non-ISO names);
* a manifest listing the files and their line counts, written last.

This is a source-system simulator, so it is plain Python: no Spark.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pipeline.io import fs
from pipeline.transforms import records

log = logging.getLogger(__name__)

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
WINDOW_HOURS = (0, 4, 8, 12, 16, 20)
PRODUCT_COLUMNS = records.PRODUCT_COLUMNS
COUNTRY_COLUMNS = records.COUNTRY_COLUMNS


def source_file(source_dir: Path, day: date) -> Path:
    return source_dir / f"{day.isoformat()}.csv.gz"


def trading_days(source_dir: Path) -> list[date]:
    return sorted(date.fromisoformat(p.name[:10]) for p in source_dir.glob("*.csv.gz"))


def window_of(hour: int) -> int:
    return hour - hour % 4


def batch_id(day: date, window: int) -> str:
    return f"tx_{day:%Y%m%d}_{window:02d}"


def landing_paths(root: str, day: date) -> dict:
    land = fs.join(root, "landing")
    return {
        "transactions": {
            w: fs.join(land, "transactions", day.isoformat(), f"{batch_id(day, w)}.csv") for w in WINDOW_HOURS
        },
        "products": fs.join(land, "products", f"products_{day:%Y%m%d}.csv"),
        "countries": fs.join(land, "countries", f"countries_{day:%Y%m%d}.csv"),
        "manifest": fs.join(land, "_manifests", f"{day.isoformat()}.json"),
    }


def landing_manifest_dir(root: str) -> str:
    return fs.join(root, "landing", "_manifests")


@dataclass
class MasterState:
    """What the source system knows after a day: products and countries by key."""

    products: dict[str, tuple[str, str]] = field(default_factory=dict)
    country_names: set[str] = field(default_factory=set)


def read_source_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        lines = fh.read().splitlines()
    if not lines or lines[0] != HEADER:
        raise ValueError(f"{path}: expected header {HEADER!r}")
    return [ln for ln in lines[1:] if ln]


def parse_line(line: str) -> list[str]:
    return next(csv.reader([line]))


def split_windows(lines: Iterable[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {w: [] for w in WINDOW_HOURS}
    for line in lines:
        hour = datetime.fromisoformat(parse_line(line)[4]).hour
        out[window_of(hour)].append(line)
    return out


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def next_products(prev: dict[str, tuple[str, str]], lines: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Products snapshot of a day from the previous snapshot and the day's source lines."""
    seen: set[str] = set()
    descriptions: dict[str, Counter] = {}
    prices: dict[str, Counter] = {}
    for line in lines:
        _, code, desc, qty, _, price, _, _ = parse_line(line)
        code = code.strip()
        if not code:
            continue
        seen.add(code)
        q, p = _decimal(qty), _decimal(price)
        if q is None or p is None or q <= 0 or p <= 0:
            continue
        if desc.strip():
            descriptions.setdefault(code, Counter())[desc.strip()] += 1
        prices.setdefault(code, Counter())[p.normalize()] += 1
    snapshot = dict(prev)
    for code in seen:
        old_desc, old_price = prev.get(code, ("", ""))
        desc = old_desc
        if code in descriptions:
            desc = min(descriptions[code].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        price = old_price
        if code in prices:
            price = format(min(prices[code].items(), key=lambda kv: (-kv[1], kv[0]))[0], "f")
        snapshot[code] = (desc, price)
    return snapshot


@functools.lru_cache(maxsize=1)
def _converter():
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    import country_converter

    return country_converter.CountryConverter()


def load_country_aliases(path: Path) -> dict[str, tuple[str, ...]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["source_country_name"]: tuple(row[c] for c in COUNTRY_COLUMNS) for row in csv.DictReader(fh)}


@functools.lru_cache(maxsize=512)
def _iso_country(name: str) -> tuple[str, ...] | None:
    cc = _converter()
    iso2 = cc.convert(name, to="ISO2", not_found="")
    if not iso2 or iso2 == name or len(iso2) != 2:
        return None
    return (
        name, iso2, cc.convert(name, to="ISO3"), cc.convert(name, to="name_short"),
        cc.convert(name, to="UNregion"), cc.convert(name, to="continent"),
    )


def country_row(name: str, aliases: dict[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """Reference row for a source country name: alias table first, then ISO 3166 via country_converter."""
    return aliases.get(name) or _iso_country(name)


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def replay_day(
    source_dir: Path, root: str, day: date, prev: MasterState, aliases: dict[str, tuple[str, ...]]
) -> MasterState:
    """Write day D's three feeds and its manifest; return the master state after D."""
    lines = read_source_lines(source_file(source_dir, day))
    paths = landing_paths(root, day)
    windows = split_windows(lines)
    for w, window_lines in windows.items():
        fs.write_text(paths["transactions"][w], "\n".join([HEADER, *window_lines]) + "\n")
    products = next_products(prev.products, lines)
    fs.write_text(paths["products"], _csv_text(PRODUCT_COLUMNS, ((c, *products[c]) for c in sorted(products))))
    names = prev.country_names | {parse_line(ln)[7].strip() for ln in lines} - {""}
    rows = [r for r in (country_row(n, aliases) for n in sorted(names)) if r]
    unmapped = sorted(n for n in names if not country_row(n, aliases))
    if unmapped:
        log.warning("%s: country names without reference data (left out of the snapshot): %s", day, unmapped)
    fs.write_text(paths["countries"], _csv_text(COUNTRY_COLUMNS, rows))
    fs.write_json(paths["manifest"], {
        "date": day.isoformat(),
        "source_file": source_file(source_dir, day).name,
        "source_lines": len(lines),
        "transactions": {batch_id(day, w): {"path": paths["transactions"][w], "lines": len(v)}
                         for w, v in windows.items()},
        "products": {"path": paths["products"], "rows": len(products)},
        "countries": {"path": paths["countries"], "rows": len(rows), "unmapped": unmapped},
    })
    return MasterState(products=products, country_names=names)


def read_state(root: str, day: date) -> MasterState:
    """Master state after an already replayed day, read back from its landed snapshots."""
    paths = landing_paths(root, day)
    products = {r["stock_code"]: (r["description"], r["unit_price"])
                for r in csv.DictReader(io.StringIO(fs.read_text(paths["products"])))}
    names = {r["source_country_name"] for r in csv.DictReader(io.StringIO(fs.read_text(paths["countries"])))}
    manifest = fs.read_json(paths["manifest"])
    return MasterState(products=products, country_names=names | set(manifest["countries"]["unmapped"]))


def replay_days(source_dir: Path, root: str, days: list[date], aliases_path: Path, progress=None) -> None:
    """Replay consecutive trading days, starting from the state landed for the day before the first."""
    all_days = trading_days(source_dir)
    if not days:
        return
    first = all_days.index(days[0])
    state = read_state(root, all_days[first - 1]) if first > 0 else MasterState()
    aliases = load_country_aliases(aliases_path)
    for i, day in enumerate(days, 1):
        state = replay_day(source_dir, root, day, state, aliases)
        if progress:
            progress(i, len(days), day)
