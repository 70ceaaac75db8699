"""Dashboard: money and column formats, freshness, scheduled runs and data-quality trends on hand-made rows."""

import datetime as dt

import pandas as pd
import pytest

from dashboard import charts, formats, metrics
from pipeline import config


@pytest.mark.parametrize(("value", "shown"), [
    (-0.0, "£0.00"),
    (-0.004, "£0.00"),
    (0.005, "£0.01"),
    (1234.5, "£1,234.50"),
    (-12.0, "-£12.00"),
    (-1234567.891, "-£1,234,567.89"),
    (None, "n/a"),
    (float("nan"), "n/a"),
])
def test_gbp_has_pounds_thousands_and_never_a_negative_zero(value, shown):
    assert formats.gbp(value) == shown


def test_every_listed_column_has_a_label_and_a_known_kind_and_others_read_as_words():
    for name, spec in formats.COLUMNS.items():
        assert spec.label and "_" not in spec.label and spec.kind in formats.KINDS, name
    assert formats.column("rows_loaded").label == "Loaded"
    assert formats.column("some_new_column") == formats.Column("Some new column", "text")


def test_money_is_rounded_to_pence_for_display_and_loses_its_negative_zero():
    df = pd.DataFrame({"line_amount": [-0.0, 2.345, -1.0], "quantity": [1, 2, 3]})
    shown = formats.for_display(df)
    assert shown["line_amount"].tolist() == [0.0, 2.35, -1.0]
    assert str(shown["line_amount"].iloc[0]) == "0.0"  # not "-0.0"
    assert shown["quantity"].tolist() == [1, 2, 3] and df["line_amount"].iloc[1] == 2.345  # a copy


def test_invoices_of_a_customers_lines_newest_first_with_returns_flagged():
    lines = pd.DataFrame({
        "invoice_no": ["1", "1", "C2", "3"],
        "invoice_ts": pd.to_datetime(["2011-01-01 10:00", "2011-01-01 10:00", "2011-01-02 09:00",
                                      "2011-01-03 08:00"]),
        "stock_code": ["A", "B", "A", "C"],
        "line_amount": [10.0, 5.5, -10.0, 3.0],
        "is_cancellation": [False, False, True, False],
    })
    out = metrics.invoices(lines)
    assert out["invoice_no"].tolist() == ["3", "C2", "1"]
    assert out["items"].tolist() == [1, 1, 2]
    assert out["amount_gbp"].tolist() == [3.0, -10.0, 15.5]
    assert out["is_cancellation"].tolist() == [False, True, False]


SUN_TO_FRI = {6, 0, 1, 2, 3, 4}  # the store's trading weekdays: no Saturday


@pytest.mark.parametrize(("loaded", "now", "hours"), [
    (dt.datetime(2011, 1, 3, 8), dt.datetime(2011, 1, 3, 17), 9.0),       # Monday
    (dt.datetime(2011, 1, 7, 20), dt.datetime(2011, 1, 9, 2), 6.0),       # Friday 20:00 to Sunday 02:00
    (dt.datetime(2011, 1, 8, 1), dt.datetime(2011, 1, 8, 23), 0.0),       # all of it on a Saturday
    (dt.datetime(2011, 1, 3, 12), dt.datetime(2011, 1, 3, 11), 0.0),      # loaded after "now"
])
def test_trading_hours_skip_the_days_the_store_does_not_trade(loaded, now, hours):
    assert metrics.trading_hours_between(loaded, now, SUN_TO_FRI) == pytest.approx(hours)


def test_stale_after_eight_trading_hours_without_a_batch():
    monday = dt.datetime(2011, 1, 3, 8)
    assert not metrics.is_stale(monday, monday + dt.timedelta(hours=8), SUN_TO_FRI)
    assert metrics.is_stale(monday, monday + dt.timedelta(hours=8, minutes=1), SUN_TO_FRI)
    friday_night = dt.datetime(2011, 1, 7, 20)
    assert not metrics.is_stale(friday_night, dt.datetime(2011, 1, 9, 3), SUN_TO_FRI)  # 7 h over Sat
    assert metrics.is_stale(friday_night, dt.datetime(2011, 1, 9, 5), SUN_TO_FRI)
    assert metrics.is_stale(None, monday, SUN_TO_FRI)


def _runs(rows):
    return pd.DataFrame(rows, columns=["task_family", "task_date", "started_at", "finished_at", "outcome"]).assign(
        started_at=lambda d: pd.to_datetime(d["started_at"]), finished_at=lambda d: pd.to_datetime(d["finished_at"]))


def test_task_runs_are_grouped_into_the_scheduled_runs_they_belong_to():
    runs = _runs([
        ("IngestDay", "2011-01-03", "2011-01-04 04:15:00", "2011-01-04 04:16:00", "DONE"),
        ("FactSales", "2011-01-03", "2011-01-04 04:16:05", "2011-01-04 04:40:00", "FAILED"),
        ("FactSales", "2011-01-03", "2011-01-04 04:45:00", "2011-01-04 04:46:00", "DONE"),  # 5 min later: same run
        ("MartsReady", "2011-01-04", "2011-01-04 08:15:00", "2011-01-04 08:16:00", "DONE"),
        ("DimDate", None, "2011-01-04 11:00:00", None, "RUNNING"),
    ])
    grouped = metrics.scheduled_runs(runs, gap_minutes=10)
    assert grouped["run"].tolist() == ["2011-01-04 04:15"] * 3 + ["2011-01-04 08:15", "2011-01-04 11:00"]
    summary = metrics.run_summary(grouped)
    assert summary["run"].tolist() == ["2011-01-04 11:00", "2011-01-04 08:15", "2011-01-04 04:15"]
    first = summary.iloc[2]
    assert (first["tasks"], first["failed"], first["dates"], first["duration_s"]) == (3, 1, "2011-01-03", 31 * 60.0)
    assert summary.iloc[0]["dates"] == ""
    assert metrics.run_summary(metrics.scheduled_runs(runs.iloc[0:0])).empty


def test_failed_checks_per_day_count_each_dates_latest_run_only():
    results = pd.DataFrame([
        # invoice_date, check_name, severity, status, checked_at
        (dt.date(2011, 1, 3), "a", "error", "FAIL", "2011-01-04 04:00"),
        (dt.date(2011, 1, 3), "b", "warn", "FAIL", "2011-01-04 04:00"),
        (dt.date(2011, 1, 3), "a", "error", "PASS", "2011-01-04 08:00"),  # the rerun passed
        (dt.date(2011, 1, 3), "b", "warn", "FAIL", "2011-01-04 08:00"),
        (dt.date(2011, 1, 4), "a", "error", "FAIL", "2011-01-05 04:00"),
        (dt.date(2011, 1, 4), "b", "warn", "FAIL", "2011-01-05 04:00"),
        (dt.date(2011, 1, 5), "a", "error", "PASS", "2011-01-06 04:00"),
    ], columns=["invoice_date", "check_name", "severity", "status", "checked_at"])
    per_day = metrics.dq_failures_per_day(results)
    assert per_day.values.tolist() == [[dt.date(2011, 1, 3), "warn", 1], [dt.date(2011, 1, 4), "error", 1],
                                       [dt.date(2011, 1, 4), "warn", 1]]
    bars = {t.name: (list(t.x), list(t.y)) for t in charts.dq_failures(per_day, dt.date(2011, 1, 3),
                                                                       dt.date(2011, 1, 5)).data}
    assert bars["error"] == ([dt.date(2011, 1, 4)], [1])
    assert bars["warn"] == ([dt.date(2011, 1, 3), dt.date(2011, 1, 4)], [1, 1])


def test_the_map_reads_the_world_from_the_app_and_the_app_ships_it():
    assert charts.MAP_CONFIG == {"topojsonURL": "app/static/topojson/"}
    world = config.PROJECT_ROOT / "dashboard" / "static" / "topojson" / "world_110m.json"
    assert world.stat().st_size > 100_000
    streamlit_config = (config.PROJECT_ROOT / ".streamlit" / "config.toml").read_text()
    assert "enableStaticServing = true" in streamlit_config


def test_the_visualizer_link_is_the_public_url_when_one_is_set():
    assert config.scheduler_ui(host="luigid", port=8082).url == "http://luigid:8082/"
    assert config.scheduler_ui(host="luigid", port=8082, public_url="http://127.0.0.1:8082/").url == \
        "http://127.0.0.1:8082/"


def _freshness_page():
    import datetime as dt

    import streamlit as st

    from dashboard import widgets

    page = st.Page(lambda: None, title="Pipeline and SLA", url_path="pipeline")
    st.navigation([st.Page(lambda: None, title="Overview", default=True), page], position="hidden")
    widgets.freshness(page, now=dt.datetime(2011, 1, 4, 1, 0))


@pytest.mark.parametrize(("loaded_at", "stale"), [("2011-01-03T20:00", False), ("2011-01-03T16:30", True)])
def test_the_sidebar_says_how_fresh_the_data_is_and_warns_when_batches_stop(monkeypatch, loaded_at, stale):
    from streamlit.testing.v1 import AppTest

    from dashboard import data

    monkeypatch.setattr(data, "freshness", lambda: {
        "data_until": dt.datetime(2011, 1, 3, 16), "loaded_at": dt.datetime.fromisoformat(loaded_at),
        "ready_date": dt.date(2011, 1, 3), "first_ready_at": dt.datetime(2011, 1, 4, 0, 20),
        "trading_weekdays": SUN_TO_FRI})
    app = AppTest.from_function(_freshness_page, default_timeout=30).run()
    assert not app.exception
    caption = app.sidebar.caption[0].value
    assert "**Data as of** 2011-01-03 16:00" in caption
    assert f"latest batch loaded {loaded_at.replace('T', ' ')} UTC" in caption
    assert "marts of 2011-01-03 ready at 2011-01-04 00:20 UTC" in caption
    warnings = [w.value for w in app.warning]
    assert warnings == ([f"The pipeline looks stalled: no batch loaded since {loaded_at.replace('T', ' ')} UTC, "
                         "more than 8 hours of trading days. These figures may be out of date."] if stale else [])
