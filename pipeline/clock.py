"""The time the pipeline stamps on what it publishes and evaluates its deadlines against.

By default the wall clock (naive UTC). A replay clock places the pipeline at a moment of the replayed data
(``python -m pipeline run`` builds demo day D at D+1 00:15, ``python -m pipeline simulate`` runs the
scheduler over simulated days): it is set to a moment and then runs ``speed`` times faster than the wall
clock, so the work a run does still takes (simulated) time. ``jump`` moves it forward, never back.
The clock is per process; every thread of the process reads the same one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time


def wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class ReplayClock:
    """Simulated UTC time: ``at`` when set, then advancing ``speed`` simulated seconds per wall second."""

    def __init__(self, at: dt.datetime, speed: float = 1.0):
        if speed <= 0:
            raise ValueError(f"a replay clock's speed must be positive, not {speed}")
        self.speed = speed
        self._lock = threading.Lock()
        self._at, self._real = at, time.monotonic()

    def now(self) -> dt.datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._real) * self.speed
            return (self._at + dt.timedelta(seconds=elapsed)).replace(microsecond=0)

    def jump(self, to: dt.datetime) -> None:
        """Move to ``to`` if it is ahead (time never runs backwards)."""
        with self._lock:
            current = self._at + dt.timedelta(seconds=(time.monotonic() - self._real) * self.speed)
            self._at, self._real = max(current, to), time.monotonic()


_clock: ReplayClock | None = None


def now() -> dt.datetime:
    """The current time, naive UTC, whole seconds: the replay clock's when one is in use."""
    return _clock.now() if _clock is not None else wall()


def minute() -> dt.datetime:
    return now().replace(second=0)


def replaying() -> bool:
    return _clock is not None


@contextlib.contextmanager
def use(clock: ReplayClock):
    """Run the block on ``clock`` (this process, every thread)."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
