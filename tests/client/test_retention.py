"""``jobartifacts keep|extend|delete JOB`` and the client's retention calls, on the real api."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.api import add_job
from support.client import GROUP, JOB, JOURNEY, Bucket, ThreadedApi, run_cli

from artifacts_client import Client, Forbidden
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import expired_at_key, job_prefix


def collected(store: LocalJobStore, bucket: Bucket, *, expires_in: float = 3600) -> int:
    add_job(store, JOB)
    bucket.put_artifacts(JOB, JOURNEY)
    expired_at = int(time.time() + expires_in)
    bucket.put(expired_at_key(job_prefix(GROUP, JOB)), str(expired_at).encode())
    return expired_at


def test_extend_moves_the_expiry_a_week_later_and_prints_the_sentence(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    before = collected(store, bucket)

    result = run_cli("extend", JOB, api_url=api.url)
    as_json = run_cli("extend", JOB, "--days", "1", "--json", api_url=api.url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{JOB} EXPIRES: extended by dev on ")
    document = json.loads(as_json.stdout)
    moved = datetime.fromisoformat(document["expired_at"])
    assert moved == datetime.fromtimestamp(before, tz=UTC) + timedelta(days=8)
    assert (document["state"], document["changed_by"]) == ("EXPIRES", "dev")


def test_keep_then_delete_from_the_cli(
    api: ThreadedApi, store: LocalJobStore, bucket: Bucket
) -> None:
    collected(store, bucket)

    kept = run_cli("keep", JOB, api_url=api.url)
    deleted = run_cli("delete", JOB, api_url=api.url)
    again = run_cli("delete", JOB, "--json", api_url=api.url)

    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith(f"{JOB} KEPT: kept by dev on ")
    assert deleted.stdout == f"{JOB} artifacts deleted\n"
    assert json.loads(again.stdout) == {"job_id": JOB, "deleted": False}
    assert Client(api.url).artifacts(JOB) == []


def test_a_member_may_not_keep_and_the_cli_says_so_in_one_line(
    secured_api: ThreadedApi, store: LocalJobStore, bucket: Bucket, alice: str
) -> None:
    collected(store, bucket)
    client = Client(secured_api.url, token=alice)

    with pytest.raises(Forbidden, match="only admins may keep"):
        client.keep_artifacts(JOB)
    refused = run_cli("keep", JOB, api_url=secured_api.url, env={"JOBARTIFACTS_TOKEN": alice})
    extended = client.extend_artifacts(JOB, days=2)

    assert refused.returncode == 1
    assert refused.stderr.startswith("jobartifacts: error: only admins may keep")
    assert refused.stderr.count("\n") == 1
    assert extended.changed_by == "alice" and extended.state == "EXPIRES"
    assert client.retention(JOB).reason == extended.reason
