"""Terminal progress and the end-of-run summary for ``python -m pipeline run``."""

from __future__ import annotations

import datetime as dt
import logging

import luigi

from pipeline.io import hs2
from pipeline.sources import replay

progress = logging.getLogger("pipeline.runtime.progress")


class ProgressPrinter:
    """Luigi event handlers that print one line per finished batch or snapshot: day i/N, batch j/6."""

    def __init__(self, days: list[dt.date]):
        self.days = {d: i for i, d in enumerate(days, 1)}
        self.done: dict[dt.date, int] = {}
        self.failed = 0

    def _prefix(self, day: dt.date) -> str:
        return f"[day {self.days.get(day, '?')}/{len(self.days)} {day}]"

    def on_success(self, task: luigi.Task) -> None:
        from pipeline.tasks import ingest

        if isinstance(task, ingest.TransactionBatch):
            for hour in task.window_hours:
                n = self.done[task.date] = self.done.get(task.date, 0) + 1
                c = _read_marker(task.marker_of(hour))
                progress.info(
                    "%s batch %d/%d %s: received %s, loaded %s, quarantined %s, duplicate %s",
                    self._prefix(task.date), n, len(replay.WINDOW_HOURS), replay.batch_id(task.date, hour),
                    c.get("rows_received"), c.get("rows_loaded"), c.get("rows_quarantined"), c.get("rows_duplicate"),
                )
        elif isinstance(task, ingest.ProductsSnapshot | ingest.CountriesSnapshot):
            counts = next(iter(_read_marker(task).get("counts", {}).values()), {})
            progress.info("%s %s snapshot: %s rows", self._prefix(task.date), task.feed,
                          counts.get("rows_received", "already applied"))
        elif isinstance(task, ingest.RetryQuarantine):
            c = _read_marker(task)
            progress.info("%s quarantine retry: %s retried, %s released", self._prefix(task.date),
                          c.get("retried"), c.get("released"))
        else:
            self._on_dw_success(task)

    def _on_dw_success(self, task: luigi.Task) -> None:
        from pipeline.tasks.ready import MartsReady
        from pipeline.tasks.star import FactSales

        rebuilt = f" (rebuilt, input revision {task.revision})" if getattr(task, "revision", "") else ""
        if isinstance(task, FactSales):
            c = _read_marker(task)
            progress.info("%s fact_sales: %s lines, line_amount %s%s", self._prefix(task.date), c.get("rows"),
                          c.get("line_amount"), rebuilt)
        elif isinstance(task, MartsReady):
            c = _read_marker(task)
            checks = c.get("reconciliation", {})
            progress.info("%s marts ready at %s UTC, %d/%d reconciliation checks passed%s", self._prefix(task.date),
                          c.get("ready_at"), sum(checks.values()), len(checks), rebuilt)

    def on_failure(self, task: luigi.Task, exc: Exception) -> None:
        self.failed += 1
        progress.error("FAILED %s: %s", task, exc)

    def register(self) -> None:
        luigi.Task.event_handler(luigi.Event.SUCCESS)(self.on_success)
        luigi.Task.event_handler(luigi.Event.FAILURE)(self.on_failure)


def _read_marker(task: luigi.Task | luigi.Target) -> dict:
    from pipeline.io import fs

    try:
        return fs.read_json(task.output() if isinstance(task, luigi.Task) else task)
    except (OSError, ValueError):
        return {}


def summary(start: dt.date, end: dt.date) -> list[str]:
    """Rows received / loaded / quarantined / duplicate per feed for the window, and table counts."""
    lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    rows = hs2.query(
        "SELECT feed, count(*), sum(rows_received), sum(rows_loaded), sum(rows_quarantined), "
        "sum(rows_duplicate), sum(rows_released) FROM ecommerce_db.batch_audit "
        "WHERE window_start >= %(lo)s AND window_start < %(hi)s GROUP BY feed ORDER BY feed",
        {"lo": lo.isoformat(sep=" "), "hi": hi.isoformat(sep=" ")},
    )
    out = [f"{'feed':<13}{'batches':>8}{'received':>10}{'loaded':>10}{'quarantined':>12}{'duplicate':>10}"
           f"{'released':>10}"]
    out += [f"{r[0]:<13}{r[1]:>8}{r[2]:>10}{r[3]:>10}{r[4]:>12}{r[5]:>10}{r[6]:>10}" for r in rows]
    out.append("")
    for table in ("transactions_raw", "products", "countries", "transactions_quarantine", "batch_audit",
                  "master_data_warnings", "ecommerce_dw.fact_sales", "ecommerce_dw.dim_customer",
                  "ecommerce_mart.mart_daily_sales", "ecommerce_mart.mart_customer_purchase_history",
                  "ecommerce_mart.mart_customer_rfm", "ecommerce_mart.mart_cohort_retention",
                  "ecommerce_mart.marts_ready"):
        name = table if "." in table else f"ecommerce_db.{table}"
        (count,), = hs2.query(f"SELECT count(*) FROM {name}")
        out.append(f"{name:<46}{count:>10} rows")
    return out
