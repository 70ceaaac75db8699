"""Where catalog backups are kept, and which of them are complete (``runtime.backup`` takes and restores them).

A backup is a directory named by its UTC time under ``[backup] dir`` (default ``<state dir>/backups``); it is
complete once it holds its manifest, and ``<name>.partial`` until then.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import config

MANIFEST = "manifest.json"
PARTIAL = ".partial"
NAME = re.compile(r"\d{8}T\d{6}Z")


def backups_dir() -> Path:
    """The directory holding every backup."""
    configured = config.backup().dir
    return config.resolve_path(configured) if configured else config.state().path / "backups"


def list_backups() -> list[Path]:
    """Complete backups, oldest first."""
    root = backups_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if NAME.fullmatch(p.name) and (p / MANIFEST).exists())


def newest() -> Path | None:
    """The newest complete backup, None when there is none."""
    found = list_backups()
    return found[-1] if found else None


def newest_name() -> str | None:
    """The newest complete backup's name (what ``python -m pipeline restore`` takes), None when there is none."""
    found = newest()
    return found.name if found else None
