"""Warehouse filesystem: URIs (``file://`` embedded, ``hdfs://`` on a cluster) to Luigi targets.

Small files (landing feeds written by the replay, markers) go through Luigi targets and are written to a
temporary name and renamed, so a reader never sees half a file. ``hdfs://`` targets are Luigi's
``HdfsTarget`` on its WebHDFS client (``[webhdfs] port``, ``user``): reads, writes and listings are REST
calls to the namenode, so the pipeline needs no Hadoop command-line tools.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlparse

import luigi


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"{uri} is not a local path")
    return parsed.path


def webhdfs(uri: str):
    """Luigi's WebHDFS client for the namenode named in an ``hdfs://host:port/path`` URI."""
    from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient
    from luigi.contrib.hdfs.webhdfs_client import webhdfs as webhdfs_config

    host = urlparse(uri).hostname
    if not host:
        raise ValueError(f"{uri}: an hdfs:// URI needs the namenode host (hdfs://namenode:8020/...)")
    return WebHdfsClient(host=host, user=webhdfs_config().user or getpass.getuser())


def target(uri: str) -> luigi.target.FileSystemTarget:
    """A Luigi target for a warehouse URI; its ``uri`` attribute keeps the full URI (an HDFS target's ``path``
    has no scheme or host), so the functions below can be given the target itself."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        out = luigi.LocalTarget(local_path(uri))
    elif scheme == "hdfs":
        from luigi.contrib.hdfs import HdfsTarget

        out = HdfsTarget(urlparse(uri).path, fs=webhdfs(uri))
    else:
        raise ValueError(f"unsupported warehouse URI scheme {scheme!r} in {uri}")
    out.uri = uri
    return out


def uri_of(where: str | luigi.target.FileSystemTarget) -> str:
    """The URI of a warehouse location given as a URI or as a ``target``."""
    return where if isinstance(where, str) else getattr(where, "uri", where.path)


def write_text(uri: str | luigi.target.FileSystemTarget, text: str) -> None:
    out = target(uri_of(uri))
    if isinstance(out, luigi.LocalTarget):
        with out.open("w") as fh:
            fh.write(text)
        return
    tmp = f"{out.path}.tmp-{uuid.uuid4().hex}"
    client = out.fs.client
    parent = os.path.dirname(out.path)
    client.makedirs(parent)
    client.write(tmp, data=text, encoding="utf-8", overwrite=True)
    if out.exists():  # WebHDFS will not rename onto a file: the old one goes just before the new one lands
        client.delete(out.path)
    client.rename(tmp, out.path)


def read_text(uri: str | luigi.target.FileSystemTarget) -> str:
    out = target(uri_of(uri))
    if isinstance(out, luigi.LocalTarget):
        with out.open("r") as fh:
            return fh.read()
    with out.fs.client.read(out.path, encoding="utf-8") as fh:
        return fh.read()


def read_bytes(uri: str | luigi.target.FileSystemTarget) -> bytes:
    out = target(uri_of(uri))
    if isinstance(out, luigi.LocalTarget):
        return Path(out.path).read_bytes()
    with out.fs.client.read(out.path) as fh:
        return fh.read()


def move(src: str, dst: str) -> None:
    """Rename a file within the warehouse filesystem, creating the destination's directory."""
    source = target(src)
    if isinstance(source, luigi.LocalTarget):
        Path(local_path(dst)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source.path, local_path(dst))
        return
    client = source.fs.client
    client.makedirs(os.path.dirname(urlparse(dst).path))
    client.rename(source.path, urlparse(dst).path)


def listdir(uri: str) -> list[str]:
    """Names in a directory; an empty list when it does not exist yet."""
    if urlparse(uri).scheme == "hdfs":
        client = webhdfs(uri).client
        path = urlparse(uri).path
        return sorted(client.list(path)) if client.status(path, strict=False) else []
    path = Path(local_path(uri))
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def ages_s(uri: str) -> dict[str, float]:
    """Seconds since each child of a directory was last modified, by the file system's clock; {} when it does
    not exist."""
    now = dt.datetime.now(dt.UTC).timestamp()
    if urlparse(uri).scheme == "hdfs":
        client, path = webhdfs(uri).client, urlparse(uri).path
        if not client.status(path, strict=False):
            return {}
        return {name: now - st["modificationTime"] / 1000 for name, st in client.list(path, status=True)}
    path = local_path(uri)
    if not os.path.isdir(path):
        return {}
    with os.scandir(path) as entries:
        return {e.name: now - e.stat(follow_symlinks=False).st_mtime for e in entries}


def delete(uri: str) -> None:
    """Remove a file or a directory with everything in it; nothing when it does not exist."""
    if urlparse(uri).scheme == "hdfs":
        webhdfs(uri).client.delete(urlparse(uri).path, recursive=True)
        return
    path = local_path(uri)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def write_json(uri: str | luigi.target.FileSystemTarget, payload: dict) -> None:
    write_text(uri, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")


def read_json(uri: str | luigi.target.FileSystemTarget) -> dict:
    return json.loads(read_text(uri))
