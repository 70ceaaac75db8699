"""Luigi tasks that replay the source and ingest the three feeds into ``ecommerce_db``.

Targets are JSON markers under ``<warehouse>/_markers``, written after the tables are published.

    luigi --module pipeline.tasks.ingest IngestDay --date 2010-12-02
    luigi --module pipeline.tasks.ingest RangeDaily --of IngestDay --start 2010-12-01 --stop 2010-12-09
    luigi --module pipeline.tasks.ingest IngestBackfill --start 2010-12-01 --end 2011-12-09
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import luigi
from luigi.tools.range import RangeDaily  # noqa: F401  (re-exported for `luigi --module ... RangeDaily`)

from pipeline import config
from pipeline.io import alerts, fs, load, lock
from pipeline.sources import replay
from pipeline.tasks.base import marker, spark_with_schema, write_marker, writes_warehouse
from pipeline.transforms.alerting import Alert

log = logging.getLogger(__name__)
progress = logging.getLogger("pipeline.runtime.progress")

config.load_profile()


@functools.lru_cache(maxsize=1)
def source_days() -> tuple[dt.date, ...]:
    """The feed calendar: trading days of the replayed source plus any day already landed (synthetic feeds)."""
    rp = config.replay()
    days = set(replay.trading_days(rp.source_path)) if rp.enabled else set()
    manifests = replay.landing_manifest_dir(config.warehouse().uri)
    days |= {dt.date.fromisoformat(name[:10]) for name in fs.listdir(manifests) if name.endswith(".json")}
    return tuple(sorted(days))


def previous_trading_day(day: dt.date) -> dt.date | None:
    earlier = [d for d in source_days() if d < day]
    return earlier[-1] if earlier else None


def is_trading_day(day: dt.date) -> bool:
    return day in set(source_days())


def masters_day(day: dt.date, window: int) -> dt.date | None:
    """The master snapshot a transaction window is checked against: the [00,04) window lands before the
    day's 06:00 masters, so it uses the previous trading day's; later windows use the same day's."""
    return day if window >= 4 else previous_trading_day(day)


def transaction_batch(day: dt.date, window: int) -> load.Batch:
    start = dt.datetime.combine(day, dt.time(window))
    paths = replay.landing_paths(config.warehouse().uri, day)
    return load.Batch(replay.batch_id(day, window), "transactions", paths["transactions"][window],
                      start, start + dt.timedelta(hours=4), masters_day(day, window), paths["manifest"])


def snapshot_batch(feed: str, day: dt.date) -> load.Batch:
    start = dt.datetime.combine(day, dt.time(6))
    return load.Batch(f"{feed}_{day:%Y%m%d}", feed, replay.landing_paths(config.warehouse().uri, day)[feed],
                      start, start + dt.timedelta(days=1))


class FeedFile(luigi.ExternalTask):
    """A feed file landed by the source system (when the pipeline does not replay the source itself)."""

    path = luigi.Parameter()

    def output(self):
        return fs.target(self.path)


def feed_landed(day: dt.date, path: str) -> luigi.Task:
    """What makes a feed file of ``day`` available: the replay of the day (``[replay] lands_feeds``), or the
    file landed by the source system."""
    return ReplayDay(day) if config.replay().lands_feeds else FeedFile(path)


class ReplayDay(luigi.Task):
    """Land one trading day of the real data as the three feeds (transaction windows, masters)."""

    date = luigi.DateParameter()

    def requires(self):
        prev = previous_trading_day(self.date)
        return ReplayDay(prev) if prev else []

    def output(self):
        return fs.target(replay.landing_paths(config.warehouse().uri, self.date)["manifest"])

    def run(self):
        if not config.replay().source_path.joinpath(f"{self.date}.csv.gz").exists():
            raise ValueError(f"{self.date} is not a trading day of the source data and no feed has landed for it")
        replay.replay_days(config.replay().source_path, config.warehouse().uri, [self.date],
                           config.resolve_path(config.reference().country_aliases))


class _MasterSnapshot(luigi.Task):
    date = luigi.DateParameter()
    feed = ""
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        prev = previous_trading_day(self.date)
        landed = feed_landed(self.date, replay.landing_paths(config.warehouse().uri, self.date)[self.feed])
        return [landed] + ([type(self)(prev)] if prev else [])

    def output(self):
        return marker(self.feed, f"{self.date}.json")

    @writes_warehouse
    def run(self):
        spark = spark_with_schema()
        loader = load.load_product_snapshots if self.feed == "products" else load.load_country_snapshots
        counts = loader(spark, [snapshot_batch(self.feed, self.date)])
        write_marker(self.output(), {"date": self.date, "feed": self.feed, "counts": counts})


class ProductsSnapshot(_MasterSnapshot):
    """Apply the 06:00 products snapshot of a day to ``ecommerce_db.products`` (SCD Type 2)."""

    feed = "products"


class CountriesSnapshot(_MasterSnapshot):
    """Apply the 06:00 countries snapshot of a day to ``ecommerce_db.countries`` (SCD Type 0)."""

    feed = "countries"


def missing_declaration(day: dt.date, window: int) -> luigi.Target:
    """The note the scheduler writes when a transaction window is overdue for longer than
    ``[schedule] declare_missing_after_minutes``: its batch is then recorded as MISSING instead of waiting."""
    return marker("missing", f"{replay.batch_id(day, window)}.json")


def alert_rejected(spark, counts: dict[str, dict]) -> None:
    """One alert per transaction file refused whole, naming the reason and where the file went."""
    alerts.notify(spark, [Alert(
        kind="feed", severity="error", subject=f"transaction feed {batch} rejected",
        body=f"{c['reason']}. Nothing of it was loaded; the file is at {c.get('rejected_to', 'the rejected area')} "
             "beside a reason file. Land a corrected file at the same path and the next run loads it.",
        dedupe_key=f"feed:{batch}", condition="REJECTED") for batch, c in counts.items() if c.get("reason")])


class WindowsParameter(luigi.Parameter):
    """A transaction window's start hour ("0" .. "20"), or several windows of one date joined by commas
    (kept in the order of the day)."""

    def normalize(self, x):
        parts = [h.strip() for h in str(x).split(",") if h.strip()]
        hours = sorted({int(h) for h in parts if h.isdigit()})
        if not parts or len(hours) < len(set(parts)) or not set(hours) <= set(replay.WINDOW_HOURS):
            raise ValueError(f"window must be one or more of {', '.join(map(str, replay.WINDOW_HOURS))}, "
                             f"not {x!r}")
        return ",".join(map(str, hours))


class TransactionBatch(luigi.Task):
    """Load one 4-hour transaction log batch into ``ecommerce_db.transactions_raw`` (its own partition).

    The [00,04) batch lands before the day's 06:00 masters, so it is checked against the previous
    day's; later windows are checked against the same day's masters. A window declared missing
    (``missing_declaration``) is recorded in ``batch_audit`` with status MISSING and no rows, and alerted on,
    so later days can go on; the day's freshness and accounting checks fail until it lands. When its file
    lands later, the batch is loaded like any other and the date is republished as late input. A file
    refused whole (``load.load_transaction_batches``) is recorded as REJECTED and alerted on the same way,
    and a corrected file landed at the same path is loaded by the next run.

    Several windows of a date (``--window 4,8,12``) load in one pass, each with its own partition, audit row
    and marker, exactly as one by one. When several windows of a date are ready at once (a run catching up),
    luigid hands them to the worker as one such batch.
    """

    date = luigi.DateParameter()
    window = WindowsParameter(batch_method=",".join)
    resources = {"ecommerce_db_writer": 1}
    max_batch_size = len(replay.WINDOW_HOURS)

    @property
    def window_hours(self) -> list[int]:
        return [int(h) for h in self.window.split(",")]

    def declared_missing(self, hour: int) -> bool:
        return (missing_declaration(self.date, hour).exists()
                and not fs.target(transaction_batch(self.date, hour).path).exists())

    def requires(self):
        deps = []
        for hour in self.window_hours:
            batch = transaction_batch(self.date, hour)
            moved = not fs.target(batch.path).exists() and bool(load.rejections(batch))
            if not (self.declared_missing(hour) or moved):
                deps.append(feed_landed(self.date, batch.path))
            masters = masters_day(self.date, hour)
            if masters:
                deps += [ProductsSnapshot(masters), CountriesSnapshot(masters)]
        return list(dict.fromkeys(deps))

    def marker_of(self, hour: int) -> luigi.Target:
        return marker("transactions", f"{replay.batch_id(self.date, hour)}.json")

    def output(self):
        markers = [self.marker_of(h) for h in self.window_hours]
        return markers[0] if len(markers) == 1 else markers

    def complete(self):
        for hour in self.window_hours:
            out = self.marker_of(hour)
            if not out.exists():
                return False
            done = fs.read_json(out)
            if ((done.get("missing") or done.get("status") == "REJECTED")
                    and fs.target(transaction_batch(self.date, hour).path).exists()):
                return False
        return True

    @writes_warehouse
    def run(self):
        spark = spark_with_schema()
        missing = [h for h in self.window_hours if self.declared_missing(h)]
        for hour in missing:
            self.record_missing(spark, hour)
        batches = [transaction_batch(self.date, h) for h in self.window_hours if h not in missing]
        counts = load.load_transaction_batches(spark, batches)
        alert_rejected(spark, counts)
        for b in batches:
            write_marker(self.marker_of(b.window_start.hour), counts[b.batch_id])

    def record_missing(self, spark, hour: int) -> None:
        batch = transaction_batch(self.date, hour)
        note = fs.read_json(missing_declaration(self.date, hour))
        load.record_missing_batch(spark, batch)
        alerts.notify(spark, [Alert(
            kind="feed", severity="error", subject=f"transaction feed {batch.batch_id} declared missing",
            body=f"{batch.path} was due at {note.get('due_at')} UTC and had not landed at "
                 f"{note.get('declared_at')} UTC; the batch is recorded as MISSING and {self.date}'s checks "
                 "fail until it lands, then it is loaded as late input",
            dedupe_key=f"feed:{batch.batch_id}", condition="MISSING")])
        write_marker(self.marker_of(hour), {"batch_id": batch.batch_id, "missing": True, "rows_received": 0,
                                            "rows_loaded": 0, "rows_quarantined": 0, "rows_duplicate": 0,
                                            "declared_at": note.get("declared_at")})


class RetryQuarantine(luigi.Task):
    """After a day's masters load, release quarantined lines whose product or country is now known."""

    date = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    def requires(self):
        return [ProductsSnapshot(self.date), CountriesSnapshot(self.date), TransactionBatch(self.date, "0")]

    def output(self):
        return marker("quarantine_retry", f"{self.date}.json")

    @writes_warehouse
    def run(self):
        result = load.retry_quarantine(spark_with_schema(), self.date)
        write_marker(self.output(), {"date": self.date, **result})


class IngestDay(luigi.WrapperTask):
    """Everything ingestion does for one calendar day; a day without trading has nothing to do."""

    date = luigi.DateParameter()

    def requires(self):
        if not is_trading_day(self.date):
            return []
        return [
            *(TransactionBatch(self.date, str(w)) for w in replay.WINDOW_HOURS),
            RetryQuarantine(self.date),
        ]


class IngestBackfill(luigi.Task):
    """Backfill a date range in a fixed number of Spark jobs, keeping per-batch markers and audit.

    Snapshots are applied in date order (all of them before the transaction batches), every batch of
    the range is classified in one pass, then quarantine is retried once. The per-batch and per-snapshot
    markers it writes are the ones ``IngestDay`` checks, so daily runs continue where it stopped.
    """

    start = luigi.DateParameter()
    end = luigi.DateParameter()
    resources = {"ecommerce_db_writer": 1}

    @property
    def days(self) -> list[dt.date]:
        return [d for d in source_days() if self.start <= d <= self.end]

    def complete(self):
        return all(IngestDay(d).complete() for d in self.days)

    def run(self):
        days = self.days
        root = config.warehouse().uri
        to_replay = [d for d in days if not ReplayDay(d).complete()] if config.replay().lands_feeds else []
        first = previous_trading_day(days[0]) if days else None
        if first and to_replay and not ReplayDay(first).complete():
            yield ReplayDay(first)
        if to_replay:
            progress.info("replaying %d trading days into the landing area", len(to_replay))
            replay.replay_days(config.replay().source_path, root, to_replay,
                               config.resolve_path(config.reference().country_aliases),
                               progress=lambda i, n, d: progress.debug("replayed %s (%d/%d)", d, i, n))
        with lock.warehouse_lock(self.task_id):
            self._load(days)

    def _load(self, days: list[dt.date]) -> None:
        spark = spark_with_schema()
        for feed, task, loader in (("products", ProductsSnapshot, load.load_product_snapshots),
                                   ("countries", CountriesSnapshot, load.load_country_snapshots)):
            todo = [d for d in days if not task(d).complete()]
            progress.info("%s: applying %d snapshots", feed, len(todo))
            counts = loader(spark, [snapshot_batch(feed, d) for d in todo])
            for d in todo:
                write_marker(task(d).output(),
                             {"date": d, "feed": feed, "counts": counts.get(f"{feed}_{d:%Y%m%d}", {})})
        batches = [(d, w) for d in days for w in replay.WINDOW_HOURS
                   if not TransactionBatch(d, str(w)).complete()]
        progress.info("transactions: loading %d batches of %d days in one pass", len(batches), len(days))
        counts = load.load_transaction_batches(spark, [transaction_batch(d, w) for d, w in batches])
        alert_rejected(spark, counts)
        for d, w in batches:
            write_marker(TransactionBatch(d, str(w)).output(), counts[replay.batch_id(d, w)])
        result = load.retry_quarantine(spark, days[-1])
        progress.info("quarantine retry: %s", result)
        for d in days:
            if not RetryQuarantine(d).complete():
                write_marker(RetryQuarantine(d).output(), {"date": d, **result, "backfill": True})
