"""The two real trading days the integration tests ingest, and expected values computed from the source files.

Independent of the pipeline: plain ``csv`` over the gzipped source, plus the lines the tests inject.
"""

import csv
import datetime as dt
import gzip
import io

from pipeline import config
from pipeline.sources import replay

DAYS = [dt.date(2010, 12, 1), dt.date(2010, 12, 2)]
# the integration days as a SQL list: modules on the shared stack check these days, whatever others add
IN_DAYS = "(" + ", ".join(f"DATE '{d}'" for d in DAYS) + ")"
BAD_DATE_LINE = "536999,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,31/12/2010 25:00,2.55,17850.0,United Kingdom"
ATLANTIS_LINE = "536998,85123A,WHITE HANGING HEART T-LIGHT HOLDER,1,2010-12-02 03:05:00,2.55,,Atlantis"


def source_lines(day):
    with gzip.open(config.replay().source_path / f"{day}.csv.gz", "rt", newline="") as fh:
        return [ln for ln in fh.read().splitlines()[1:] if ln]


def fields(line):
    return next(csv.reader([line]))


def new_code_line():
    """A real 2010-12-02 line whose stock code the source had never shown on 2010-12-01, moved to 03:10."""
    before = {fields(ln)[1] for ln in source_lines(DAYS[0])}
    line = next(ln for ln in source_lines(DAYS[1]) if fields(ln)[1] not in before)
    f = fields(line)
    f[4] = "2010-12-02 03:10:00"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(f)
    return buf.getvalue(), f[1]


INJECTED, NEW_CODE = new_code_line()


def loaded_rows(day):
    """The fields of the lines the pipeline loads for ``day``: source lines de-duplicated inside each
    4-hour window (duplicates are exact copies in one window), plus the injected line a retry releases."""
    per_window = {}
    for ln in source_lines(day):
        per_window.setdefault(int(fields(ln)[4][11:13]) // 4, set()).add(ln)
    rows = [fields(ln) for group in per_window.values() for ln in group]
    if day == DAYS[1]:
        rows.append(fields(INJECTED))
    return rows


def expected_batches():
    """batch_id -> (received, duplicates) from the source files plus the lines this test injects."""
    out = {}
    for day in DAYS:
        windows = {w: [] for w in replay.WINDOW_HOURS}
        for ln in source_lines(day):
            windows[int(fields(ln)[4][11:13]) // 4 * 4].append(ln)
        if day == DAYS[1]:
            windows[0] += [INJECTED, INJECTED, BAD_DATE_LINE, ATLANTIS_LINE]
        for w, lines in windows.items():
            out[replay.batch_id(day, w)] = (len(lines), len(lines) - len(set(lines)))
    return out


