"""The span of ``dim_date``: whole years covering the configured minimum and every landed date (hand-worked)."""

import datetime as dt

import pytest

from pipeline.transforms.star import calendar_range

D = dt.date
MIN_START, MIN_END = D(2010, 1, 1), D(2012, 12, 31)


@pytest.mark.parametrize(
    "days, expected",
    [
        ((), (D(2010, 1, 1), D(2012, 12, 31))),                                   # no feed yet: the minimum
        ((D(2010, 12, 1), D(2011, 12, 9)), (D(2010, 1, 1), D(2012, 12, 31))),     # the replayed year fits
        ((D(2030, 6, 14),), (D(2010, 1, 1), D(2030, 12, 31))),                    # a later year, to its Dec 31
        ((D(2012, 12, 31),), (D(2010, 1, 1), D(2012, 12, 31))),                   # the minimum's last day
        ((D(2013, 1, 1),), (D(2010, 1, 1), D(2013, 12, 31))),                     # the next year's first day
        ((D(2009, 12, 31),), (D(2009, 1, 1), D(2012, 12, 31))),                   # an earlier year, from Jan 1
        ((D(2028, 2, 29), D(2008, 5, 5), D(2026, 1, 2)), (D(2008, 1, 1), D(2028, 12, 31))),  # unordered
    ],
)
def test_range_covers_the_minimum_and_every_landed_date_in_whole_years(days, expected):
    assert calendar_range(days, MIN_START, MIN_END) == expected


def test_a_minimum_off_year_boundaries_is_widened_to_whole_years():
    assert calendar_range([], D(2010, 6, 15), D(2011, 3, 1)) == (D(2010, 1, 1), D(2011, 12, 31))


def test_days_may_be_any_iterable_read_once():
    days = iter([D(2026, 1, 1), D(2026, 1, 2)])
    assert calendar_range(days, MIN_START, MIN_END) == (D(2010, 1, 1), D(2026, 12, 31))
