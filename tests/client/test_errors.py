"""Every failure reaches the caller as a typed error with the API's code; tokens stay secret."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support.api import add_job, token
from support.client import JOB, Bucket, ThreadedApi
from support.servers import RedisServer, S3Server, free_port

from artifacts_client import (
    ApiError,
    BadUserInput,
    CleanupState,
    Client,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProtocolError,
    Unauthenticated,
    WaitTimeout,
)
from artifacts_shared.cleanup_queue import RESCAN_REQUEST_KEY
from artifacts_shared.jobstore import LocalJobStore


def test_an_unknown_job_is_not_found_and_a_malformed_id_is_bad_input(api: ThreadedApi) -> None:
    client = Client(api.url)

    with pytest.raises(NotFound) as unknown:
        client.job("job-209901010000-zzzzzz")
    with pytest.raises(BadUserInput) as malformed:
        client.artifacts("../../etc")

    assert unknown.value.code == "NOT_FOUND" and unknown.value.extensions["code"] == "NOT_FOUND"
    assert "job-209901010000-zzzzzz" in unknown.value.message
    assert malformed.value.code == "BAD_USER_INPUT"
    assert isinstance(malformed.value, ApiError)


def test_another_groups_job_is_forbidden_and_a_bad_token_unauthenticated(
    secured_api: ThreadedApi, store: LocalJobStore, alice: str
) -> None:
    add_job(store, JOB, group="team-b")
    forged = token("alice", secret="another-secret-that-is-at-least-32-chars")

    with pytest.raises(Forbidden) as forbidden:
        Client(secured_api.url, alice).job(JOB)
    with pytest.raises(Unauthenticated) as rejected:
        Client(secured_api.url, forged).jobs()

    assert forbidden.value.code == "FORBIDDEN"
    assert rejected.value.code == "UNAUTHENTICATED"
    assert forged not in str(rejected.value) and forged not in repr(rejected.value)


def test_the_token_comes_from_the_environment_or_its_file_and_is_never_shown(
    secured_api: ThreadedApi,
    store: LocalJobStore,
    alice: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_job(store, JOB)
    monkeypatch.setenv("JOBARTIFACTS_API_URL", secured_api.url)
    monkeypatch.setenv("JOBARTIFACTS_TOKEN", alice)
    from_env = Client()
    monkeypatch.delenv("JOBARTIFACTS_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(alice + "\n")
    monkeypatch.setenv("JOBARTIFACTS_TOKEN_FILE", str(token_file))
    from_file = Client()

    assert from_env.job(JOB).id == JOB
    assert from_file.job(JOB).id == JOB
    assert from_env.url == f"{secured_api.url}/graphql"
    assert alice not in repr(from_env) and alice not in repr(from_env._transport)


def test_an_api_that_cannot_be_reached_is_a_connection_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ConnectionFailed) as failed:
        Client(url, timeout=5).jobs()

    assert failed.value.code == "CONNECTION_FAILED"
    assert failed.value.message == f"cannot reach the API at {url}/graphql: connection refused"


def test_something_that_is_not_the_api_is_a_protocol_error(s3_server: S3Server) -> None:
    with pytest.raises(ProtocolError, match="without a GraphQL response") as wrong:
        Client(s3_server.url).jobs()

    assert wrong.value.code == "PROTOCOL_ERROR"


def test_a_bad_api_url_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("ftp://example.org")
    with pytest.raises(ValueError, match="must not hold credentials") as with_password:
        Client("http://dev:hunter2@127.0.0.1:8080")

    assert "hunter2" not in str(with_password.value)
    assert Client("http://127.0.0.1:8080/").url == "http://127.0.0.1:8080/graphql"
    assert Client("https://example.org/api/graphql/").url == "https://example.org/api/graphql"


def test_an_admin_starts_a_cleanup_run_and_waiting_for_it_can_time_out(
    api: ThreadedApi, bucket: Bucket
) -> None:
    client = Client(api.url)

    run = client.cleanup()
    again = client.cleanup()
    with pytest.raises(WaitTimeout) as timed_out:
        client.cleanup(wait=True, interval=0.1, timeout=0.3)  # no janitor serves this queue

    assert run.id.startswith("cleanup-") and run.state is CleanupState.QUEUED
    assert again.id == run.id
    assert timed_out.value.last.id == run.id
    assert client.cleanup_run(run.id).result is None


def test_an_admin_can_ask_the_cleanup_for_a_rescan(
    api: ThreadedApi, redis_server: RedisServer
) -> None:
    run = Client(api.url).cleanup(rescan=True)

    assert run.state is CleanupState.QUEUED
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as sock:
        sock.sendall(f"GET {RESCAN_REQUEST_KEY}\r\n".encode())
        assert sock.recv(64) == b"$1\r\n1\r\n"  # the flag the next run takes


def test_a_member_who_is_not_admin_cannot_run_the_cleanup(
    secured_api: ThreadedApi, alice: str
) -> None:
    with pytest.raises(Forbidden):
        Client(secured_api.url, alice).cleanup()
