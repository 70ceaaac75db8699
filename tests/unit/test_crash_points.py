"""Which hit of a named crash point kills the process: counted over the process, or within one task family."""

import pytest

from pipeline.io import crash


@pytest.mark.parametrize("spec, parsed", [
    ("publish.swapped", ("publish.swapped", None, 1)),
    ("publish.swapped:3", ("publish.swapped", None, 3)),
    ("publish.swapped@FactSales", ("publish.swapped", "FactSales", 1)),
    ("task.before_marker@TransactionBatch:2", ("task.before_marker", "TransactionBatch", 2)),
    ("", None),
])
def test_a_crash_setting_names_a_point_an_optional_task_family_and_a_hit(spec, parsed):
    assert crash._parse(spec) == parsed


@pytest.fixture
def exits(monkeypatch):
    calls = []
    monkeypatch.setattr(crash, "_hits", {})
    monkeypatch.setattr(crash.os, "_exit", calls.append)
    return calls


def test_a_point_of_a_task_family_counts_only_the_hits_inside_that_family(monkeypatch, exits):
    monkeypatch.setattr(crash, "_target", crash._parse("publish.swapped@FactSales:2"))
    crash.point("publish.swapped")
    with crash.task("DimCustomer"):
        crash.point("publish.swapped")
    with crash.task("FactSales"):
        crash.point("publish.written")
        crash.point("publish.swapped")
        assert exits == []
        crash.point("publish.swapped")
    assert exits == [crash.EXIT_CODE]


def test_a_point_without_a_family_counts_every_hit_of_the_process(monkeypatch, exits):
    monkeypatch.setattr(crash, "_target", crash._parse("publish.swapped:3"))
    crash.point("publish.swapped")
    with crash.task("DimCustomer"):
        crash.point("publish.swapped")
    assert exits == []
    with crash.task("FactSales"):
        crash.point("publish.swapped")
    assert exits == [crash.EXIT_CODE]


def test_no_point_fires_without_the_setting(monkeypatch, exits):
    monkeypatch.setattr(crash, "_target", crash._parse(""))
    with crash.task("FactSales"):
        for name in crash.POINTS:
            crash.point(name)
    assert exits == []


def test_an_unknown_point_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown crash point 'publish.nowhere'; known: publish.written"):
        crash._parse("publish.nowhere@FactSales:2")
