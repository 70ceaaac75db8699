"""When a date's marts are first ready and when a publication is a revision (pure)."""

import datetime as dt

from pipeline.transforms.publication import Publication, next_publication

DAY = dt.date(2010, 12, 2)
T0 = dt.datetime(2010, 12, 3, 0, 20)
LATER = dt.datetime(2010, 12, 4, 0, 25)


def first(input_revision="aaa"):
    return Publication(DAY, 0, T0, T0, None, "first publication", input_revision)


def test_the_first_publication_is_revision_0_and_sets_first_ready_at():
    assert next_publication(DAY, [], "aaa", T0) == first()


def test_a_rerun_of_the_same_publication_adds_nothing():
    assert next_publication(DAY, [first()], "aaa", LATER) is None


def test_changed_input_adds_a_revision_keeping_first_ready_at():
    new = next_publication(DAY, [first()], "bbb", LATER)
    assert (new.revision, new.first_ready_at, new.ready_at, new.republished_at) == (1, T0, LATER, LATER)
    assert "aaa -> bbb" in new.reason


INVALIDATED = dt.datetime(2026, 11, 27, 21, 0)  # an operator's wall clock, later than any replayed time


def test_an_invalidation_adds_one_revision_that_records_it():
    new = next_publication(DAY, [first()], "aaa", LATER, INVALIDATED, "invalidated from FactSales by ann")
    assert (new.revision, new.first_ready_at, new.reason, new.invalidated_at) == (
        1, T0, "invalidated from FactSales by ann", INVALIDATED)
    assert next_publication(DAY, [first(), new], "aaa", LATER + dt.timedelta(hours=1), INVALIDATED, "x") is None


def test_late_input_after_an_invalidation_is_its_own_revision():
    served = Publication(DAY, 1, T0, LATER, LATER, "invalidated", "aaa", INVALIDATED)
    new = next_publication(DAY, [first(), served], "bbb", LATER + dt.timedelta(days=1), INVALIDATED, "x")
    assert new.revision == 2 and new.reason.startswith("late or released lines")


def test_revisions_count_up_from_the_latest():
    second = Publication(DAY, 1, T0, LATER, LATER, "late", "bbb")
    new = next_publication(DAY, [second, first()], "ccc", LATER + dt.timedelta(days=1))
    assert (new.revision, new.first_ready_at) == (2, T0)


def test_a_record_written_before_revisions_existed_is_not_republished():
    assert next_publication(DAY, [first(input_revision="")], "bbb", LATER) is None
