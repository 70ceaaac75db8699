"""The benchmark's table and JSON line: ratios, targets met or not, rows not run or failed, row selection."""

import json

import pytest

from bench import report
from bench.report import Row, Target
from bench.run import parse_args, selected


def test_a_seconds_target_is_met_up_to_its_limit():
    assert Row("a", "a", Target(10), pipeline_s=10.0).met is True
    assert Row("a", "a", Target(10), pipeline_s=10.5).met is False
    assert Row("a", "a", Target(10)).met is None


def test_a_ratio_target_compares_the_pipeline_with_duckdb():
    row = Row("r", "r", Target(10, "ratio"), pipeline_s=120.0, duckdb_s=20.0)
    assert row.ratio == pytest.approx(6.0)
    assert row.met is True
    assert Row("r", "r", Target(5, "ratio"), pipeline_s=120.0, duckdb_s=20.0).met is False
    assert Row("r", "r", Target(5, "ratio"), pipeline_s=120.0).met is None


def test_a_memory_bound_must_hold_too():
    target = Target(5, "ratio", rss_mib=2048)
    assert Row("s", "s", target, pipeline_s=40.0, duckdb_s=10.0, peak_rss_mib=2000).met is True
    assert Row("s", "s", target, pipeline_s=40.0, duckdb_s=10.0, peak_rss_mib=2100).met is False
    assert target.text() == "ratio <= 5x, peak RSS <= 2 GiB"


def test_figures_are_printed_in_the_targets_unit():
    assert report.format_seconds(0.1834, "ms") == "183 ms"
    assert report.format_seconds(0.27) == "0.27 s"
    assert report.format_seconds(12.345) == "12.3 s"
    assert report.format_seconds(203.4) == "203 s"
    assert report.format_seconds(None) == "-"
    assert Target(0.2, unit="ms").text() == "<= 200 ms"
    assert Target(60).text() == "<= 60 s"
    assert Target(0.3).text() == "<= 0.3 s"


def test_the_table_has_one_line_per_row_with_every_column():
    rows = [Row("y", "year | ingestion", Target(10, "ratio"), pipeline_s=200.0, duckdb_s=20.0, notes="n"),
            Row("d", "dashboard", Target(2), pipeline_s=3.5),
            Row("x", "scale", Target(3, "ratio"), status='not run (ARGS="--scale 10m-month")')]
    lines = report.table(rows)
    assert lines[0] == "| workload | pipeline | DuckDB | ratio | target | met | notes |"
    assert len(lines) == 2 + len(rows)
    assert lines[2] == "| year / ingestion | 200 s | 20.0 s | 10.0x | ratio <= 10x | yes | n |"
    assert lines[3] == "| dashboard | 3.5 s | - | - | <= 2 s | NO |  |"
    assert lines[4] == '| scale | not run (ARGS="--scale 10m-month") | - | - | ratio <= 3x | - |  |'


def test_the_json_line_holds_every_row_and_the_run():
    rows = [Row("a", "a", Target(1), pipeline_s=0.5), Row("b", "b", Target(3, "ratio"), status="failed: boom")]
    out = report.summary_json(rows, {"wall_s": 12.0})
    assert "\n" not in out
    data = json.loads(out)
    assert data["run"] == {"wall_s": 12.0}
    assert [(r["key"], r["met"], r["status"]) for r in data["rows"]] == [("a", True, "measured"),
                                                                          ("b", None, "failed: boom")]
    assert data["rows"][0]["pipeline_s"] == 0.5


def test_rows_not_run_or_failed_say_why_and_keep_a_measured_figure():
    rows = report.new_rows()
    assert list(rows) == list(report.KEYS)
    rows["sla"].pipeline_s = 2.0
    report.failed(rows, ["sla", "review"], RuntimeError("python -m pipeline anomaly exited 2:\ntraceback"))
    assert rows["sla"].status == ""
    assert rows["review"].status == "failed: python -m pipeline anomaly exited 2:"
    report.not_run(rows, ["scale-1m-day"], 'ARGS="--scale 1m-day"')
    assert rows["scale-1m-day"].status == 'not run (ARGS="--scale 1m-day")'


def test_the_default_rows_leave_the_scale_rows_to_the_arguments():
    assert selected(parse_args([])) == list(report.DEFAULT_KEYS)
    assert selected(parse_args(["--scale", "1m-day"]))[-1] == "scale-1m-day"
    assert selected(parse_args(["--only", "review,sla"])) == ["sla", "review"]
    assert selected(parse_args(["--all"])) == list(report.KEYS)
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])
