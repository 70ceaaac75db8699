"""Warehouse targets for both schemes: ``file://`` (embedded) and ``hdfs://`` (cluster).

No HDFS can run on this machine (no Hadoop distribution, no Docker engine), so the ``hdfs://`` cases talk to
a stand-in HTTP server that answers the WebHDFS REST calls the way the Hadoop documentation specifies them
(WebHDFS REST API: GETFILESTATUS, LISTSTATUS, MKDIRS, CREATE and OPEN with the 307 redirect to a datanode,
RENAME, DELETE; CREATE without ``overwrite=true`` refuses an existing file; errors as ``RemoteException``
JSON). The cluster stack in docker-compose.yaml runs the real one.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import luigi
import pytest
from luigi.contrib.hdfs import HdfsTarget

from pipeline.io import fs, lock


class WebHdfs(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    dirs: set[str] = {"/"}
    calls: list[str] = []

    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: dict | bytes | None = None, headers: dict | None = None):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(body, bytes) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _not_found(self, path):
        self._reply(404, {"RemoteException": {"exception": "FileNotFoundException",
                                              "javaClassName": "java.io.FileNotFoundException",
                                              "message": f"File does not exist: {path}"}})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))
        data = b""
        while size := int(self.rfile.readline().strip(), 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data

    def _parse(self):
        url = urllib.parse.urlparse(self.path)
        assert url.path.startswith("/webhdfs/v1/")
        path = "/" + url.path[len("/webhdfs/v1/"):].strip("/")
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        self.calls.append(query["op"])
        return path, query

    def _status(self, path):
        kind = "DIRECTORY" if path in self.dirs else "FILE"
        return {"pathSuffix": path.rsplit("/", 1)[-1], "type": kind, "length": len(self.files.get(path, b"")),
                "owner": "ecommerce", "group": "supergroup", "permission": "644", "replication": 1,
                "blockSize": 134217728, "modificationTime": 0, "accessTime": 0}

    def do_GET(self):  # noqa: N802
        path, q = self._parse()
        if q["op"] == "GETFILESTATUS":
            if path in self.files or path in self.dirs:
                return self._reply(200, {"FileStatus": {**self._status(path), "pathSuffix": ""}})
            return self._not_found(path)
        if q["op"] == "LISTSTATUS":
            if path not in self.dirs:
                return self._not_found(path)
            children = sorted({p for p in [*self.files, *self.dirs] if p != path and p.rsplit("/", 1)[0] == path})
            return self._reply(200, {"FileStatuses": {"FileStatus": [self._status(c) for c in children]}})
        if q["op"] == "OPEN":
            if path not in self.files:
                return self._not_found(path)
            if "datanode" not in q:
                return self._reply(307, None, {"Location": f"http://{self.headers['Host']}{self.path}&datanode=1"})
            return self._reply(200, self.files[path])
        raise AssertionError(q)

    def do_PUT(self):  # noqa: N802
        path, q = self._parse()
        if q["op"] == "MKDIRS":
            parts = path.strip("/").split("/")
            self.dirs.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1))
            return self._reply(200, {"boolean": True})
        if q["op"] == "CREATE":
            if "datanode" not in q:
                return self._reply(307, None, {"Location": f"http://{self.headers['Host']}{self.path}&datanode=1"})
            if path in self.files and q.get("overwrite", "false") != "true":
                return self._reply(403, {"RemoteException": {
                    "exception": "FileAlreadyExistsException",
                    "javaClassName": "org.apache.hadoop.fs.FileAlreadyExistsException",
                    "message": f"{path} for client 127.0.0.1 already exists"}})
            self.files[path] = self._body()
            return self._reply(201, None, {"Location": f"hdfs://namenode:8020{path}"})
        if q["op"] == "RENAME":
            dest = q["destination"]
            if path not in self.files or dest in self.files:
                return self._reply(200, {"boolean": False})
            self.files[dest] = self.files.pop(path)
            return self._reply(200, {"boolean": True})
        raise AssertionError(q)

    def do_DELETE(self):  # noqa: N802
        path, q = self._parse()
        return self._reply(200, {"boolean": self.files.pop(path, None) is not None})


@pytest.fixture
def webhdfs(luigi_config):
    WebHdfs.files, WebHdfs.dirs, WebHdfs.calls = {}, {"/"}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), WebHdfs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    luigi_config("webhdfs", "port", str(server.server_address[1]))
    luigi_config("webhdfs", "user", "ecommerce")
    yield WebHdfs
    server.shutdown()


@pytest.mark.parametrize(("uri", "expected"), [
    ("file:///srv/wh", "file:///srv/wh/_markers/dw/2011-01-05.json"),
    ("hdfs://namenode:8020/warehouse", "hdfs://namenode:8020/warehouse/_markers/dw/2011-01-05.json"),
    ("hdfs://namenode:8020/warehouse/", "hdfs://namenode:8020/warehouse/_markers/dw/2011-01-05.json"),
])
def test_paths_are_built_under_the_warehouse_root(uri, expected):
    assert fs.join(uri, "_markers", "dw/", "/2011-01-05.json") == expected


def test_each_scheme_gets_its_target():
    local = fs.target("file:///srv/wh/_markers/x.json")
    assert isinstance(local, luigi.LocalTarget) and local.path == "/srv/wh/_markers/x.json"
    remote = fs.target("hdfs://namenode:8020/warehouse/_markers/x.json")
    assert isinstance(remote, HdfsTarget) and remote.path == "/warehouse/_markers/x.json"
    assert remote.fs.host == "namenode"
    with pytest.raises(ValueError, match="unsupported warehouse URI scheme 's3'"):
        fs.target("s3://bucket/x")
    with pytest.raises(ValueError, match="needs the namenode host"):
        fs.target("hdfs:///warehouse/x")


def test_markers_round_trip_on_webhdfs(webhdfs):
    uri = "hdfs://127.0.0.1:8020/warehouse/_markers/dw/2011-01-05.json"
    assert not fs.target(uri).exists()
    fs.write_json(uri, {"date": "2011-01-05", "revision": 1})
    assert fs.target(uri).exists()
    assert fs.read_json(uri) == {"date": "2011-01-05", "revision": 1}
    fs.write_json(uri, {"date": "2011-01-05", "revision": 2})  # a marker is rewritten in place
    assert fs.read_json(uri) == {"date": "2011-01-05", "revision": 2}
    assert list(webhdfs.files) == ["/warehouse/_markers/dw/2011-01-05.json"]  # no temporary file left
    assert webhdfs.calls.count("RENAME") == 2  # written under a temporary name, then renamed


def test_listing_a_directory_on_both_schemes(webhdfs, tmp_path):
    for root in (tmp_path.as_uri(), "hdfs://127.0.0.1:8020/warehouse"):
        manifests = fs.join(root, "landing", "_manifests")
        assert fs.listdir(manifests) == []
        fs.write_text(fs.join(manifests, "2011-01-05.json"), "{}")
        fs.write_text(fs.join(manifests, "2011-01-04.json"), "{}")
        assert fs.listdir(manifests) == ["2011-01-04.json", "2011-01-05.json"], root


def test_the_hdfs_writer_lock_is_a_lease_created_only_if_absent(webhdfs):
    uri = "hdfs://127.0.0.1:8020/warehouse/_lock/warehouse.lease"
    first, second = lock._HdfsLease(uri, lease_s=60), lock._HdfsLease(uri, lease_s=60)
    assert first.try_acquire(lock.owner_record("TransactionBatch(date=2010-12-01, window=8)"))
    assert not second.try_acquire(lock.owner_record("python -m pipeline anomaly"))
    assert second.holder()["task"] == "TransactionBatch(date=2010-12-01, window=8)"
    first.release()
    assert "/warehouse/_lock/warehouse.lease" not in webhdfs.files
    assert second.try_acquire(lock.owner_record("python -m pipeline anomaly"))
    second.release()


def test_an_expired_hdfs_lease_is_taken_over(webhdfs):
    uri = "hdfs://127.0.0.1:8020/warehouse/_lock/warehouse.lease"
    webhdfs.dirs.update({"/warehouse", "/warehouse/_lock"})
    webhdfs.files["/warehouse/_lock/warehouse.lease"] = json.dumps(
        {"host": "gone", "pid": 1, "task": "dead", "since": "2026-11-27 00:00:00", "expires": 0}).encode()
    taker = lock._HdfsLease(uri, lease_s=60)
    assert taker.try_acquire(lock.owner_record("next"))
    assert taker.holder()["task"] == "next"
    taker.release()
