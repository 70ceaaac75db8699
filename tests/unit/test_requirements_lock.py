"""The lock file pins what setup.cfg pins, with the hashes of every file, and the build backend is pinned too."""

import configparser
import re

from pipeline import config

ROOT = config.PROJECT_ROOT


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip().removesuffix("\\").strip()
        if line and not line.startswith("--hash="):
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


def test_every_locked_package_has_its_files_hashes():
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text().split("\n", 2)[2])
    unhashed = [entry.split()[0] for entry in entries if entry.strip() and "--hash=sha256:" not in entry]
    assert len(entries) > 70 and unhashed == []


def test_the_build_backend_and_pip_are_pinned_and_installed_from_the_lock():
    backend = re.search(r'requires = \["setuptools==([^"]+)"\]', (ROOT / "pyproject.toml").read_text())
    assert backend and _pins((ROOT / "requirements.lock").read_text().splitlines())["setuptools"] == backend[1]
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q pip==" in makefile and "--require-hashes --no-deps -r requirements.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile  # the project builds with the locked setuptools
