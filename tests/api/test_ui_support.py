"""What the web UI needs from the api: its page on deep links, the caller, and expiry dates.

The browser tests (``tests/e2e/``) show these at work; these pin the api's side down
without a browser.
"""

from __future__ import annotations

from datetime import UTC, datetime

from support.api import Api, add_job, token

from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.phjob import (
    ArtifactOverrides,
    PhJob,
    PhJobMetadata,
    PhJobPhase,
    PhJobSpec,
    PhJobStatus,
)

JOB = "job-202009250153-34s0ti"
EXPIRY_QUERY = """
query ($id: ID!) {
  phJob(where: {id: $id}) { phase artifactRetentionSeconds artifactExpiredAt artifact { prefix } }
}
"""


async def test_job_deep_links_serve_the_ui_page_under_a_strict_content_security_policy(
    api: Api,
) -> None:
    deep = await api.get(f"/jobs/{JOB}", bearer=None)
    listing = await api.get("/jobs", bearer=None)
    script = await api.get("/js/main.js", bearer=None)
    zip_route = await api.get(f"/jobs/{JOB}/artifacts.zip", bearer=None)

    assert deep.status == 200 and deep.content_type == "text/html"
    assert '<script type="module" src="/js/main.js">' in await deep.text()
    policy = deep.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert listing.status == 200 and listing.content_type == "text/html"
    # Module scripts load only with a JavaScript content type.
    assert script.status == 200 and "javascript" in script.content_type
    # The zip route below a job's path is still the zip route, not the page.
    assert zip_route.status == 401


async def test_viewer_names_the_caller_its_groups_and_whether_it_is_an_admin(api: Api) -> None:
    member = await api.graphql(
        "{ viewer { name groups admin } }", bearer=token("alice", groups=["team-b", "team-a"])
    )
    admin = await api.graphql("{ viewer { admin } }", bearer=token("root", roles=["admin"]))
    anonymous = await api.graphql("{ viewer { name } }", bearer=None)

    assert member.data == {
        "viewer": {"name": "alice", "groups": ["team-a", "team-b"], "admin": False}
    }
    assert admin.data == {"viewer": {"admin": True}}
    assert anonymous.codes == ["UNAUTHENTICATED"]


async def test_a_finished_job_says_when_its_artifacts_expire_even_after_the_folder_is_gone(
    api: Api, store: LocalJobStore
) -> None:
    add_job(store, JOB, phase=PhJobPhase.SUCCEEDED)
    finished = datetime(2020, 9, 25, 2, 0, 30, tzinfo=UTC)
    store.write_status(JOB, PhJobStatus(phase=PhJobPhase.SUCCEEDED, finish_time=finished))

    result = await api.graphql(EXPIRY_QUERY, {"id": JOB})

    # The default ARTIFACT_RETENTION_SECONDS, 7 days, from the end of the job; no folder.
    assert result.data == {
        "phJob": {
            "phase": "Succeeded",
            "artifactRetentionSeconds": 604_800,
            "artifactExpiredAt": "2020-10-02T02:00:30Z",
            "artifact": {"prefix": f"groups/team-a/jobArtifacts/{JOB}"},
        }
    }


async def test_artifact_expiry_follows_the_jobs_own_retention_and_is_null_until_it_ends(
    api: Api, store: LocalJobStore
) -> None:
    finished = datetime(2020, 9, 25, 2, 0, 0, tzinfo=UTC)
    running, hour, forever = (
        "job-202009250153-aaaaaa",
        "job-202009250153-bbbbbb",
        "job-202009250153-cccccc",
    )
    add_job(store, running, phase=PhJobPhase.RUNNING)
    for job_id, retention in ((hour, 3600), (forever, 0)):
        store.create(
            PhJob(
                metadata=PhJobMetadata(name=job_id),
                spec=PhJobSpec(
                    display_name=job_id,
                    group_name="team-a",
                    command="true",
                    artifact=ArtifactOverrides(retention_seconds=retention),
                ),
            )
        )
        store.write_status(job_id, PhJobStatus(phase=PhJobPhase.FAILED, finish_time=finished))

    answers = {
        job_id: (await api.graphql(EXPIRY_QUERY, {"id": job_id})).data["phJob"]
        for job_id in (running, hour, forever)
    }

    assert answers[running]["artifactExpiredAt"] is None
    assert answers[hour]["artifactRetentionSeconds"] == 3600
    assert answers[hour]["artifactExpiredAt"] == "2020-09-25T03:00:00Z"
    assert answers[forever]["artifactRetentionSeconds"] == 0
    assert answers[forever]["artifactExpiredAt"] is None
