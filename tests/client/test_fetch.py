"""One download against a storage that misbehaves: expired links, cut connections, errors.

A real S3 server does not misbehave on request, so these tests put a small HTTP server of
their own behind the download link: it can refuse a link the way S3 refuses an expired one,
or hang up halfway through a body.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from artifacts_client import Artifact, DownloadError, IntegrityError
from artifacts_client.downloads import fetch_artifact
from artifacts_client.transport import download_opener

BODY = b"0123456789" * 1000
EXPIRED = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


class Storage(http.server.ThreadingHTTPServer):
    requests: list[str]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Storage

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/expired"):
            self.send_response(403)
            self.send_header("Content-Length", str(len(EXPIRED)))
            self.end_headers()
            self.wfile.write(EXPIRED)
        elif self.path.startswith("/cut"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:4000])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)


@pytest.fixture
def storage() -> Iterator[Storage]:
    server = Storage(("127.0.0.1", 0), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def artifact(storage: Storage, path: str) -> Artifact:
    host, port = storage.server_address[:2]
    return Artifact(
        job_id="job-202009250153-34s0ti",
        name="data.bin",
        size=len(BODY),
        last_modified=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        sha256=hashlib.sha256(BODY).hexdigest(),
        download_url=f"http://{host!s}:{port}{path}?X-Amz-Signature=secret",
    )


def test_an_expired_link_is_fetched_again_once_with_a_fresh_one(
    storage: Storage, tmp_path: Path
) -> None:
    refreshed: list[str] = []

    def refresh() -> Artifact:
        refreshed.append("again")
        return artifact(storage, "/fresh")

    download = fetch_artifact(
        artifact(storage, "/expired"),
        tmp_path / "data.bin",
        opener=download_opener(),
        refresh=refresh,
    )

    assert refreshed == ["again"]
    assert [path.split("?")[0] for path in storage.requests] == ["/expired", "/fresh"]
    assert (tmp_path / "data.bin").read_bytes() == BODY
    assert download.verified == "sha256"
    # The file carries the artifact's time, like `curl -R`.
    assert (tmp_path / "data.bin").stat().st_mtime == datetime(
        2024, 5, 6, 7, 8, 9, tzinfo=UTC
    ).timestamp()


def test_a_refused_link_is_a_download_error_naming_the_s3_code_not_the_signature(
    storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as refused:
        fetch_artifact(
            artifact(storage, "/expired"), tmp_path / "data.bin", opener=download_opener()
        )

    assert refused.value.message == "data.bin: the download link answered HTTP 403 (AccessDenied)"
    assert "secret" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_connection_cut_halfway_leaves_no_partial_file(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError) as cut:
        fetch_artifact(artifact(storage, "/cut"), tmp_path / "data.bin", opener=download_opener())

    # http.client hands over the 4000 bytes and then an end: the size check catches it.
    assert cut.value.message == (
        "data.bin: received 4000 bytes but the listing says 10000; the file was not kept"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_body_longer_than_listed_is_refused(storage: Storage, tmp_path: Path) -> None:
    listed_short = artifact(storage, "/fresh")
    listed_short = Artifact(
        **{**listed_short.to_json(), "size": 10, "sha256": None, "last_modified": None}
    )

    with pytest.raises(IntegrityError, match="received 10000 bytes but the listing says 10"):
        fetch_artifact(listed_short, tmp_path / "data.bin", opener=download_opener())

    assert list(tmp_path.iterdir()) == []
