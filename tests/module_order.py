"""Run the test modules in an order drawn from a seed, to show that none depends on another having run first.

    pytest -p tests.module_order --shuffle-modules SEED

Each module keeps its own tests in file order; the modules on the shared integration stack are still dealt to one
worker together (``tests/conftest.py``), in the shuffled order.
"""

from __future__ import annotations

import random

import pytest


def pytest_addoption(parser):
    parser.addoption("--shuffle-modules", type=int, default=None, metavar="SEED",
                     help="run the test modules in an order drawn from SEED")


def shuffled_by_module(nodeids: list[str], seed: int) -> list[str]:
    """``nodeids`` with their modules in an order drawn from ``seed``, each module's own order kept."""
    modules: dict[str, list[str]] = {}
    for nodeid in nodeids:
        modules.setdefault(nodeid.split("::")[0], []).append(nodeid)
    order = sorted(modules)
    random.Random(seed).shuffle(order)
    return [nodeid for module in order for nodeid in modules[module]]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    seed = config.getoption("--shuffle-modules")
    if seed is None:
        return
    by_id = {item.nodeid: item for item in items}
    items[:] = [by_id[nodeid] for nodeid in shuffled_by_module([item.nodeid for item in items], seed)]


def pytest_report_header(config):
    seed = config.getoption("--shuffle-modules")
    return None if seed is None else f"modules shuffled with seed {seed}"
