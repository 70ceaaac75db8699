"""The lock file pins what setup.cfg pins, and the build backend is pinned too."""

import configparser
import re

from pipeline import config

ROOT = config.PROJECT_ROOT


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[_name(name)] = version
    return pins


def test_every_package_setup_cfg_pins_is_locked_at_that_version():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    direct = _pins(setup["options"]["install_requires"].splitlines())
    for extra in ("dev", "cluster"):
        direct |= _pins(setup["options.extras_require"][extra].splitlines())
    locked = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert {name: locked.get(name) for name in direct} == direct
    assert {"py4j", "jinja2", "requests"} <= set(locked)  # what the direct ones pull in is pinned too


def test_the_build_backend_and_pip_are_pinned():
    assert 'requires = ["setuptools==' in (ROOT / "pyproject.toml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q pip==" in makefile and "-c requirements.lock" in makefile
