"""Servers the benchmarks share: moto's S3 endpoint in a child process, and small helpers.

``MotoServer`` runs moto's threaded S3 server (the same werkzeug server as the
``moto_server`` command) in a child process of its own, so the benchmark's GIL never slows
the server, on a free loopback port. Unlike the bare command it can also be *seeded*: the
child takes JSON lines on stdin and writes objects straight into its in-memory store, which
turns the 20,000-object data sets of the janitor and listing comparisons from minutes of
PUTs into seconds. What is measured still reads, lists and deletes those objects over HTTP.

Run as ``python bench/servers.py moto`` it is that child: it prints its URL, then answers
each command line with one line, and stops when stdin closes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "devstack"))
from seaweedfs import Credentials, SeaweedPorts, weed_binary, weed_command, write_identities

LOOPBACK = "127.0.0.1"
_CACHED_FROM = 8 << 20
_SEED_THREADS = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(
    url: str,
    *,
    timeout: float = 60.0,
    process: subprocess.Popen[Any] | None = None,
    any_status: bool = False,
) -> None:
    """Poll ``url`` until it answers below 500 (or at all); fail early if ``process`` exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500 or any_status:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500 or any_status:
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.1)


class SeaweedServer:
    """SeaweedFS's ``weed mini`` in a child process, as `make run` starts it; one per run.

    ``with SeaweedServer() as s3: s3.url``. ``seed*`` load objects with parallel PUTs over
    HTTP (a real server has no back door), ``reset`` deletes every bucket; ``version`` is
    what ``weed version`` says, for the results.
    """

    ACCESS_KEY = "bench"
    SECRET_KEY = "bench-secret"

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-seaweedfs-")
        self.data = Path(self._dir.name)
        self.ports = SeaweedPorts.free()
        self.url = f"http://{LOOPBACK}:{self.ports.s3}"
        self._identities = self.data / "s3.json"
        write_identities(self._identities, Credentials(self.ACCESS_KEY, self.SECRET_KEY))
        self._child: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    @property
    def version(self) -> str:
        done = subprocess.run([weed_binary(), "version"], capture_output=True, text=True)
        return " ".join(done.stdout.split()[1:3])  # "version 8000GB 4.48 ..." -> "8000GB 4.48"

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SeaweedServer:
        command = weed_command(self.data / "store", self.ports, self._identities)
        with (self.data / "server.log").open("ab") as log:
            self._child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_http(f"{self.url}/", process=self._child, any_status=True)
        return self

    def stop(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        self._dir.cleanup()

    def settings(self, bucket: str) -> Any:
        from artifacts_shared.settings import S3Settings

        return S3Settings(
            s3_endpoint_url=self.url,
            s3_access_key_id=self.ACCESS_KEY,
            s3_secret_access_key=self.SECRET_KEY,  # type: ignore[arg-type]
            phfs_bucket=bucket,
        )

    @property
    def client(self) -> Any:
        """A boto3 client with every right (thread-safe: the seeding threads share it)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id=self.ACCESS_KEY,
                aws_secret_access_key=self.SECRET_KEY,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    max_pool_connections=_SEED_THREADS,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._client

    def reset(self) -> None:
        """Delete every bucket, with what it holds."""
        for bucket in self.client.list_buckets().get("Buckets", ()):
            self.client.delete_bucket(Bucket=bucket["Name"])

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(Bucket=bucket)

    def seed(self, bucket: str, keys: list[str], *, size: int = 0, text: str | None = None) -> None:
        """Objects under ``keys``: ``text`` (UTF-8), else ``size`` random bytes shared by all."""
        body = text.encode() if text is not None else os.urandom(size)
        self._put(bucket, [(key, body) for key in keys])

    def seed_objects(self, bucket: str, objects: list[tuple[str, str]]) -> None:
        """Objects given as ``(key, text)`` pairs, each with its own UTF-8 body."""
        self._put(bucket, [(key, text.encode()) for key, text in objects])

    def seed_file(self, bucket: str, key: str, path: Path) -> None:
        """One object holding the bytes of the local file ``path`` (multipart when large)."""
        self.client.upload_file(str(path), bucket, key)

    def _put(self, bucket: str, objects: list[tuple[str, bytes]]) -> None:
        with ThreadPoolExecutor(_SEED_THREADS) as pool:
            for done in [
                pool.submit(self.client.put_object, Bucket=bucket, Key=key, Body=body)
                for key, body in objects
            ]:
                done.result()


class MotoServer:
    """A moto S3 server in a child process; ``with MotoServer() as s3: s3.url``."""

    def __init__(self) -> None:
        self.url = ""
        self._child: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> MotoServer:
        self._child = subprocess.Popen(
            [sys.executable, __file__, "moto"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        self.url = self._child.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the moto child did not start")
        wait_for_http(f"{self.url}/moto-api/", process=self._child)
        return self

    def stop(self) -> None:
        if self._child is None:
            return
        if self._child.stdin is not None:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def _ask(self, command: dict[str, Any]) -> None:
        assert self._child is not None and self._child.stdin and self._child.stdout
        self._child.stdin.write(json.dumps(command) + "\n")
        self._child.stdin.flush()
        answer = self._child.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"moto child: {command['op']}: {answer or 'no answer'}")

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def create_bucket(self, bucket: str) -> None:
        self._ask({"op": "bucket", "bucket": bucket})

    def seed(self, bucket: str, keys: list[str], *, size: int = 0, text: str | None = None) -> None:
        """Objects under ``keys``: ``text`` (UTF-8), else ``size`` random bytes shared by all."""
        self._ask({"op": "seed", "bucket": bucket, "keys": keys, "size": size, "text": text})

    def seed_objects(self, bucket: str, objects: list[tuple[str, str]]) -> None:
        """Objects given as ``(key, text)`` pairs, each with its own UTF-8 body."""
        self._ask({"op": "objects", "bucket": bucket, "objects": objects})

    def seed_file(self, bucket: str, key: str, path: Path) -> None:
        """One object holding the bytes of the local file ``path``."""
        self._ask({"op": "file", "bucket": bucket, "key": key, "path": str(path)})


def _serve_ranges_like_s3() -> None:
    """Make a ranged GET cost its range, not the whole object, as on S3.

    moto reads an object's whole body out of its buffer on every GET and slices the range
    from that copy, so the 63 ranged GETs with which boto3 fetches a 500 MiB object read
    31 GiB: a cost no real S3 has, and one that only clients using ranges (MLflow's
    proxy, through boto3's ``download_file``) would pay. Large bodies are kept as one
    ``bytes`` object after the first read instead; writing a body drops it.
    """
    from moto.s3.models import FakeKey

    read, write = FakeKey.value.fget, FakeKey.value.fset
    assert read is not None and write is not None

    def cached(key: Any) -> bytes:
        body: bytes | None = key.__dict__.get("_bench_body")
        if body is None:
            body = read(key)
            if len(body) >= _CACHED_FROM:
                key.__dict__["_bench_body"] = body
        return body

    def store(key: Any, value: bytes) -> None:
        key.__dict__.pop("_bench_body", None)
        write(key, value)

    FakeKey.value = property(cached, store)  # type: ignore[assignment,method-assign]


def _serve_moto() -> None:
    """The child: serve S3 on a free port, seed on request, stop when stdin closes."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    # No line per request; and moto's store is not safe against listing a bucket while
    # another thread deletes from it: the rare 500 that follows (a KeyError inside moto)
    # is retried by every client here, so its traceback is noise.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    _serve_ranges_like_s3()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)

    def backend() -> Any:
        # Looked up per command: moto's reset replaces the backend objects.
        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    try:
        for line in sys.stdin:
            command = json.loads(line)
            try:
                if command["op"] == "bucket":
                    backend().create_bucket(command["bucket"], "us-east-1")
                elif command["op"] == "seed":
                    text = command.get("text")
                    body = text.encode() if text is not None else os.urandom(command["size"])
                    for key in command["keys"]:
                        backend().put_object(
                            command["bucket"], key, body, disable_notification=True
                        )
                elif command["op"] == "objects":
                    for key, text in command["objects"]:
                        backend().put_object(
                            command["bucket"], key, text.encode(), disable_notification=True
                        )
                elif command["op"] == "file":
                    body = Path(command["path"]).read_bytes()
                    backend().put_object(
                        command["bucket"], command["key"], body, disable_notification=True
                    )
                    del body
                else:
                    raise ValueError(f"unknown op {command['op']!r}")
                print("ok", flush=True)
            except Exception as err:  # report it to the parent, keep serving
                print(f"error: {type(err).__name__}: {err}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["moto"]:
        _serve_moto()
    else:
        sys.exit("usage: python bench/servers.py moto")
