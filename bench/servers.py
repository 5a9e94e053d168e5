"""The S3 server every benchmark uses, SeaweedFS's ``weed mini``, and small helpers.

``SeaweedServer`` starts ``weed mini`` as `make run` does (devstack/seaweedfs.py builds the
command) in a child process, every port free and on loopback, data in a temporary folder.
A real server has no back door, so data sets are loaded over HTTP like any client's; the
seeding client is lean (botocore's SigV4 signer on keep-alive connections, a few threads)
because a boto3 ``put_object`` costs this machine more CPU than the server spends storing
the object, and the benchmarks load tens of thousands of them.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "devstack"))
from seaweedfs import Credentials, SeaweedPorts, weed_binary, weed_command, write_identities

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
_SEED_THREADS = 8
"""Seeding PUTs in flight: on 2 cores more threads only contend for the GIL (measured:
8 threads about 375 PUTs/s, 32 threads about 215)."""


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


def weed_version() -> str:
    """The server's name and version, "SeaweedFS 4.48", from `weed version`'s first line."""
    done = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, check=True)
    words = done.stdout.split()
    return f"SeaweedFS {words[2]}" if len(words) > 2 else f"SeaweedFS ({done.stdout.strip()})"


class SeaweedServer:
    """SeaweedFS's ``weed mini`` in a child process, as `make run` starts it; one per run.

    ``with SeaweedServer() as s3: s3.url``. ``seed*`` load objects with parallel PUTs over
    HTTP, ``reset`` deletes every bucket; ``version`` ("SeaweedFS 4.48") names the server
    in the results, and ``loaded`` says how many objects the seeding PUT and how long it took.
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
        self._seeder = _Seeder(self.url, self.ACCESS_KEY, self.SECRET_KEY)

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    @cached_property
    def version(self) -> str:
        """The server's name and version, e.g. "SeaweedFS 4.48", for the results."""
        return weed_version()

    @property
    def loaded(self) -> tuple[int, float]:
        """Objects the ``seed*`` methods stored so far, and the seconds they took."""
        return self._seeder.count, self._seeder.seconds

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
            s3_region=REGION,
            s3_access_key_id=self.ACCESS_KEY,
            s3_secret_access_key=self.SECRET_KEY,  # type: ignore[arg-type]
            phfs_bucket=bucket,
        )

    @property
    def client(self) -> Any:
        """A boto3 client with every right: buckets, and large files for ``seed_file``."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.url,
                region_name=REGION,
                aws_access_key_id=self.ACCESS_KEY,
                aws_secret_access_key=self.SECRET_KEY,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    max_pool_connections=16,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._client

    def reset(self) -> None:
        """Delete every bucket, with what it holds (SeaweedFS drops a non-empty bucket)."""
        for bucket in self.client.list_buckets().get("Buckets", ()):
            self.client.delete_bucket(Bucket=bucket["Name"])

    def create_bucket(self, bucket: str) -> None:
        self.client.create_bucket(Bucket=bucket)

    def seed(self, bucket: str, keys: list[str], *, size: int = 0, text: str | None = None) -> None:
        """Objects under ``keys``: ``text`` (UTF-8), else ``size`` random bytes shared by all."""
        body = text.encode() if text is not None else os.urandom(size)
        self._seeder.put(bucket, [(key, body) for key in keys])

    def seed_objects(self, bucket: str, objects: list[tuple[str, str]]) -> None:
        """Objects given as ``(key, text)`` pairs, each with its own UTF-8 body."""
        self._seeder.put(bucket, [(key, text.encode()) for key, text in objects])

    def seed_file(self, bucket: str, key: str, path: Path) -> None:
        """One object holding the bytes of the local file ``path`` (multipart when large)."""
        self.client.upload_file(str(path), bucket, key)


class _Seeder:
    """PUTs of small objects, signed with botocore's SigV4 signer, over kept-alive connections.

    A boto3 ``put_object`` costs about 3.4 ms of client CPU here (parameter validation,
    event hooks, response parsing) against 0.8 ms for this, and SeaweedFS spends about
    1.6 ms storing a small object: with boto3 the client is the bottleneck.
    """

    def __init__(self, url: str, access_key: str, secret_key: str) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials as AwsCredentials

        self._url = url
        self._host = urlsplit(url).netloc
        self._signer = S3SigV4Auth(AwsCredentials(access_key, secret_key), "s3", REGION)
        self._local = threading.local()
        self.count = 0
        self.seconds = 0.0

    def put(self, bucket: str, objects: list[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(_SEED_THREADS) as pool:
            for _ in pool.map(lambda item: self._put_one(bucket, *item), objects):
                pass
        self.count += len(objects)
        self.seconds += time.perf_counter() - started

    def _put_one(self, bucket: str, key: str, body: bytes) -> None:
        from botocore.awsrequest import AWSRequest

        path = f"/{bucket}/{quote(key, safe='/~')}"
        request = AWSRequest(method="PUT", url=f"{self._url}{path}", data=body)
        self._signer.add_auth(request)
        headers = dict(request.headers.items())
        for attempt in (1, 2):
            connection = self._connection(fresh=attempt > 1)
            try:
                connection.request("PUT", path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A kept-alive connection the server closed: PUT again on a new one.
                if attempt == 2:
                    raise
        if response.status != 200:
            raise RuntimeError(f"PUT {path}: HTTP {response.status}: {answer[:500]!r}")

    def _connection(self, *, fresh: bool) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self._host, timeout=60)
            self._local.connection = connection
        return connection
