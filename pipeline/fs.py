"""Warehouse filesystem: URIs (``file://`` embedded, ``hdfs://`` on a cluster) to Luigi targets.

Small files (landing feeds written by the replay, markers) go through Luigi targets, whose ``open('w')``
writes to a temporary name and renames on close, so a reader never sees half a file.
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

import luigi


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{uri} is not a local path")
    return parsed.path


def target(uri: str) -> luigi.target.FileSystemTarget:
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        return luigi.LocalTarget(local_path(uri))
    if scheme == "hdfs":
        from luigi.contrib.hdfs import HdfsTarget

        return HdfsTarget(uri)
    raise ValueError(f"unsupported warehouse URI scheme {scheme!r} in {uri}")


def write_text(uri: str, text: str) -> None:
    with target(uri).open("w") as fh:
        fh.write(text)


def read_text(uri: str) -> str:
    with target(uri).open("r") as fh:
        return fh.read()


def write_json(uri: str, payload: dict) -> None:
    write_text(uri, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")


def read_json(uri: str) -> dict:
    return json.loads(read_text(uri))
