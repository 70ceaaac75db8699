"""When a date's marts count as ready, and when a later publication is a revision of them (pure).

A date is first ready once: ``first_ready_at`` never changes. Its marts are published again when their
input changed (late lines, lines released from quarantine) or an operator invalidated the date
(``python -m pipeline invalidate``); each such publication adds a revision with its time and reason. A
rerun of the same publication (after a crash between the record and the task's marker) adds nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Publication:
    invoice_date: dt.date
    revision: int
    first_ready_at: dt.datetime
    ready_at: dt.datetime
    republished_at: dt.datetime | None
    reason: str
    input_revision: str
    invalidated_at: dt.datetime | None = None


def next_publication(day: dt.date, previous: list[Publication], input_revision: str, now: dt.datetime,
                     invalidated_at: dt.datetime | None = None, invalidation_reason: str = "") -> Publication | None:
    """The record a publication of ``day``'s marts at ``now`` adds, or None when ``previous`` already holds it.

    ``previous``: the date's earlier records; ``input_revision``: the digest of its input now;
    ``invalidated_at``: the operator's latest invalidation of the date (None: never). An invalidation is
    served once, by the first publication after it, which records it; clocks are not compared, so a
    replayed publication time and a wall-clock invalidation time do not mix.
    """
    if not previous:
        return Publication(day, 0, now, now, None, "first publication", input_revision, invalidated_at)
    latest = max(previous, key=lambda p: p.revision)
    first = min(previous, key=lambda p: p.revision).first_ready_at
    served = invalidated_at is None or any(p.invalidated_at == invalidated_at for p in previous)
    if not served:
        reason = invalidation_reason or "invalidated"
    elif latest.input_revision and input_revision != latest.input_revision:
        reason = (f"late or released lines changed the input (revision {latest.input_revision} -> "
                  f"{input_revision})")
    else:
        return None
    return Publication(day, latest.revision + 1, first, now, now, reason, input_revision, invalidated_at)
