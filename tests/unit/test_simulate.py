"""The simulated source's landing plan and the --late/--missing arguments (pure)."""

import datetime as dt

import pytest

from pipeline.runtime import simulate

DAYS = [dt.date(2011, 3, 1), dt.date(2011, 3, 2)]


@pytest.mark.parametrize(("text", "expected"), [
    ("products@2011-03-01", ("products", dt.date(2011, 3, 1), -1)),
    ("transactions@2011-03-02T12", ("transactions", dt.date(2011, 3, 2), 12)),
    ("transactions@2011-03-02T0", ("transactions", dt.date(2011, 3, 2), 0)),
])
def test_a_feed_is_named_by_feed_day_and_window(text, expected):
    assert simulate.parse_feed(text) == expected


@pytest.mark.parametrize("text", ["products", "orders@2011-03-01", "transactions@2011-03-01",
                                  "transactions@2011-03-01T13", "products@2011-03-01T4", "products@01/03/2011"])
def test_a_bad_feed_name_is_a_clear_error(text):
    with pytest.raises(simulate.InvalidFeedSpec, match="expected|window"):
        simulate.parse_feed(text)


def test_feeds_land_on_time_at_their_due_time_in_utc():
    plan = simulate.landing_plan(DAYS, dt.time(6), "Europe/London")
    assert len(plan) == 2 * (6 + 2)
    assert all(p.lands_at == p.due_at for p in plan)
    products = next(p for p in plan if p.name == "products@2011-03-01")
    assert products.due_at == dt.datetime(2011, 3, 1, 6, 0)  # GMT in March before the clocks change
    last_window = next(p for p in plan if p.name == "transactions@2011-03-02T20")
    assert last_window.due_at == dt.datetime(2011, 3, 3, 0, 0)
    assert [p.lands_at for p in plan] == sorted(p.lands_at for p in plan)


def test_late_and_missing_feeds():
    late = dict([simulate.parse_late("products@2011-03-01=11:30"),
                 simulate.parse_late("transactions@2011-03-01T20=2011-03-02T02:10")])
    plan = simulate.landing_plan(DAYS, dt.time(6), "Europe/London", late,
                                 {simulate.parse_feed("transactions@2011-03-02T12")})
    by_name = {p.name: p for p in plan}
    assert by_name["products@2011-03-01"].lands_at == dt.datetime(2011, 3, 1, 11, 30)
    assert by_name["transactions@2011-03-01T20"].lands_at == dt.datetime(2011, 3, 2, 2, 10)
    assert by_name["transactions@2011-03-02T12"].lands_at is None
    assert plan[-1].name == "transactions@2011-03-02T12"  # never lands: last


def test_a_late_feed_outside_the_simulated_days_is_refused():
    with pytest.raises(simulate.InvalidFeedSpec, match="not a feed of a simulated business day"):
        simulate.landing_plan(DAYS, dt.time(6), "Europe/London",
                              dict([simulate.parse_late("products@2011-03-05=11:30")]))


def test_a_late_time_must_be_a_time():
    with pytest.raises(simulate.InvalidFeedSpec, match="landing time"):
        simulate.landing_plan(DAYS, dt.time(6), "Europe/London",
                              dict([simulate.parse_late("products@2011-03-01=late")]))
