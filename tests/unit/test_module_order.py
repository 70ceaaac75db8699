"""The module shuffle behind ``pytest -p tests.module_order --shuffle-modules SEED``."""

from tests.module_order import shuffled_by_module

IDS = ["a.py::t1", "a.py::t2", "b.py::t1", "c.py::t1", "c.py::t2", "c.py::t3", "d.py::t1"]


def test_modules_move_as_wholes_and_keep_their_own_order():
    for seed in range(20):
        got = shuffled_by_module(IDS, seed)
        assert sorted(got) == sorted(IDS)
        modules = [nodeid.split("::")[0] for nodeid in got]
        assert [m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m] == sorted(set(modules),
                                                                                       key=modules.index)
        for module in "abcd":
            assert [n for n in got if n.startswith(module)] == [n for n in IDS if n.startswith(module)]


def test_a_seed_gives_one_order_and_seeds_give_several():
    assert shuffled_by_module(IDS, 7) == shuffled_by_module(IDS, 7)
    assert len({tuple(shuffled_by_module(IDS, seed)) for seed in range(20)}) > 5
