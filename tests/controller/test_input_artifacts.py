"""A job's input artifacts, placed and verified by our side before its command runs.

The local runtime (the dev stack) places them itself; on Kubernetes an init container of our
image does, which these tests check in the pod the controller asks the emulator for, then run
as that container would (``python -m artifacts_controller.inputs`` with its environment)
against the real S3 server, then the job's own command over what it placed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from support.jobs import JobHome
from support.kube import KubeEmulator
from support.localruns import artifacts_of, finished, running_local
from support.phjobs import create_phjob, eventually, new_phjob, read_phjob, running_controller
from support.seeds import HELLO, deliver_seed

from artifacts_controller.expiry_feed import ExpiryFeed
from artifacts_controller.inputs import InputsError, place_inputs
from artifacts_controller.kube import PHJOBS, PODS, Kube
from artifacts_controller.kube_runtime import KubeRuntime
from artifacts_controller.metrics import ControllerMetrics
from artifacts_controller.orphans import OrphanGrace
from artifacts_controller.pods import INPUTS_CONTAINER, JOB_CONTAINER, UPLOADER_CONTAINER
from artifacts_controller.reconcile import Reconciler
from artifacts_controller.settings import ControllerSettings
from artifacts_shared.input_holds import INPUT_HOLDS_KEY, InputHolds
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.layout import job_prefix
from artifacts_shared.manifest import ManifestFile
from artifacts_shared.metadata_store import read_manifest, write_manifest
from artifacts_shared.phjob import ArtifactInput, PhJobPhase, new_job_id
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import S3Settings

SEED = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)
PODS_R = "v1/pods"


def _reads(seed: str) -> str:
    """The consumer's command: its own artifact holds what it read from the seed's."""
    return (
        f"mkdir artifacts; touch artifacts/ran; cp inputs/{seed}/sub/test.txt artifacts/got.txt; "
        f"test ! -e inputs/{seed}/test.txt"
    )


def _sub_of(seed: str, group: str) -> ArtifactInput:
    """What the api records for ``{jobId: seed, path: "sub"}``."""
    return ArtifactInput(job_id=seed, path="sub", group_name=group, file_count=1, total_size=6)


# -- the local runtime ---------------------------------------------------------------------


async def test_a_local_job_reads_the_seed_jobs_sub_folder_and_its_artifact_says_hello(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
    redis: Redis,
    input_holds: InputHolds,
) -> None:
    seed = store.create(new_phjob(command=SEED))
    async with running_local(store, local_settings, expiry_feed):
        assert (await finished(store, seed)).phase is PhJobPhase.SUCCEEDED
        consumer = new_phjob(
            command=_reads(seed.id), input_artifacts=(_sub_of(seed.id, "ML_Team"),)
        )
        prefix = job_prefix("ML_Team", seed.id)
        await input_holds.hold(consumer.id, [prefix], now=1e10)  # as the api does
        store.create(consumer)
        status = await finished(store, consumer)
    assert status.phase is PhJobPhase.SUCCEEDED, status
    got = await artifacts_of(s3, local_settings.phfs_bucket, consumer)
    assert got == {"ran": b"", "got.txt": HELLO}
    home = local_settings.local_runtime_dir / consumer.id / "home"
    assert (home / "inputs" / seed.id / "sub" / "test.txt").read_bytes() == HELLO
    # Placed and run: the seed's folder is no longer held for it.
    assert await redis.zrange(f"{INPUT_HOLDS_KEY}{prefix}", 0, -1) == []


async def test_a_tampered_input_fails_the_local_job_before_its_command_runs(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
    s3: S3Client,
) -> None:
    seed_id = new_job_id()
    prefix = await deliver_seed(s3, local_settings.phfs_bucket, seed_id, group="ML_Team")
    # Same size, other bytes: only the sha256 tells.
    await s3.put_object(
        Bucket=local_settings.phfs_bucket, Key=f"{prefix}sub/test.txt", Body=b"HELLO\n"
    )
    consumer = store.create(
        new_phjob(command=_reads(seed_id), input_artifacts=(_sub_of(seed_id, "ML_Team"),))
    )
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, consumer)
    assert status.phase is PhJobPhase.FAILED
    assert status.reason == "InputsFailed"
    assert status.message == (
        f"the input artifacts could not be placed: inputs/{seed_id}/'sub/test.txt': its sha256 "
        "or size differs from the source manifest's (the object was changed after it was "
        "collected); the command was not run"
    )
    home = local_settings.local_runtime_dir / consumer.id / "home"
    assert not (home / "artifacts" / "ran").exists()  # the command never ran
    assert not (home / "inputs" / seed_id / "sub" / "test.txt").exists()
    assert not (home / "inputs" / seed_id / "sub" / ".test.txt.partial").exists()


async def test_an_input_whose_artifacts_were_deleted_fails_the_job_saying_so(
    expiry_feed: ExpiryFeed,
    store: LocalJobStore,
    local_settings: ControllerSettings,
) -> None:
    gone = new_job_id()  # recorded when it existed; its folder has gone since (Redis lost)
    consumer = store.create(
        new_phjob(
            command="mkdir artifacts; touch artifacts/ran",
            input_artifacts=(_sub_of(gone, "ML_Team"),),
        )
    )
    async with running_local(store, local_settings, expiry_feed):
        status = await finished(store, consumer)
    assert status.phase is PhJobPhase.FAILED
    assert status.message == (
        f"the input artifacts could not be placed: input {gone}: its artifacts are gone "
        "(deleted or expired since this job was created)"
    )


# -- the fetch itself ----------------------------------------------------------------------


async def test_placing_refuses_a_manifest_that_names_a_path_out_of_the_folder(
    s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    """A phfs-mode job writes its own manifest: its names are checked before use."""
    seed = new_job_id()
    prefix = await deliver_seed(s3, s3_settings.phfs_bucket, seed, files={"ok": b"y"})
    manifest = await read_manifest(s3, s3_settings.phfs_bucket, prefix)
    assert manifest is not None
    forged = ManifestFile(name="../../escape", size=1, sha256=hashlib.sha256(b"x").hexdigest())
    await write_manifest(
        s3,
        s3_settings.phfs_bucket,
        prefix,
        manifest.model_copy(update={"files": [forged, *manifest.files]}),
    )
    source = ArtifactInput(job_id=seed, group_name="team-a", file_count=2, total_size=2)
    with pytest.raises(InputsError, match="unsafe file"):
        await place_inputs(
            [source], tmp_path / "inputs", s3=s3, bucket=s3_settings.phfs_bucket, limit_bytes=100
        )
    assert not (tmp_path / "escape").exists()
    assert list((tmp_path / "inputs").rglob("*")) == [tmp_path / "inputs" / seed]


async def test_placing_refuses_inputs_over_the_jobs_size_limit_and_a_changed_manifest(
    s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    seed = new_job_id()
    await deliver_seed(s3, s3_settings.phfs_bucket, seed)
    whole = ArtifactInput(job_id=seed, group_name="team-a", file_count=2, total_size=12)
    with pytest.raises(InputsError, match="over the job's artifact size limit"):
        await place_inputs([whole], tmp_path, s3=s3, bucket=s3_settings.phfs_bucket, limit_bytes=11)
    stale = whole.model_copy(update={"file_count": 3, "total_size": 18})
    with pytest.raises(InputsError, match="changed since this job was created"):
        await place_inputs(
            [stale], tmp_path, s3=s3, bucket=s3_settings.phfs_bucket, limit_bytes=100
        )
    placed = await place_inputs(
        [whole], tmp_path, s3=s3, bucket=s3_settings.phfs_bucket, limit_bytes=12
    )
    assert (placed.files, placed.bytes) == (2, 12)
    assert (tmp_path / seed / "test.txt").read_bytes() == HELLO
    assert (tmp_path / seed / "test.txt").stat().st_mode & 0o777 == 0o644


# -- Kubernetes: the init container ------------------------------------------------------


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.fixture
def s3_pod_settings(controller_settings: ControllerSettings) -> ControllerSettings:
    return controller_settings.model_copy(
        update={
            "artifact_delivery": "s3",
            "uploader_image": "registry.example/artifacts-controller:1.2",
            "uploader_s3_secret": "artifacts-s3",
        }
    )


def _reconciler(
    kube: Kube,
    settings: ControllerSettings,
    s3: S3Client,
    expiry_feed: ExpiryFeed,
    input_holds: InputHolds,
) -> Reconciler:
    metrics = ControllerMetrics()
    runtime = KubeRuntime(
        kube=kube, settings=settings, script="#!/bin/bash\n", metrics=metrics, s3=s3
    )
    orphans = OrphanGrace.for_settings(settings, s3=s3, expiry_feed=expiry_feed)
    return Reconciler(
        runtime,
        metrics=metrics,
        expiry_feed=expiry_feed,
        orphans=orphans,
        input_holds=input_holds,
    )


def _run_init_container(
    container: dict[str, Any], settings: S3Settings, target: Path, message: Path
) -> subprocess.CompletedProcess[str]:
    """The init container as the kubelet would run it: its command (our image's python), its
    env, the Secret's keys (``envFrom``), its volume at ``target``."""
    assert container["command"][:3] == ["python", "-m", "artifacts_controller.inputs"]
    secret = settings.s3_secret_access_key
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **_env(container),
        "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",  # from the Secret it names
        "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        "PHJOB_INPUTS_DIR": str(target),  # where its volume is mounted here
    }
    arguments = container["command"][3:]
    arguments[arguments.index("--message-file") + 1] = str(message)
    return subprocess.run(
        [sys.executable, "-m", "artifacts_controller.inputs", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_pod_places_inputs_with_our_init_container_and_the_job_reads_them(
    kube: Kube,
    kube_emulator: KubeEmulator,
    s3_pod_settings: ControllerSettings,
    s3: S3Client,
    expiry_feed: ExpiryFeed,
    input_holds: InputHolds,
    job: JobHome,
    tmp_path: Path,
) -> None:
    bucket = s3_pod_settings.phfs_bucket
    seed = new_job_id()
    await deliver_seed(s3, bucket, seed, group="ML_Team")
    created = await create_phjob(
        kube, command=_reads(seed), input_artifacts=(_sub_of(seed, "ML_Team"),)
    )
    reconciler = _reconciler(kube, s3_pod_settings, s3, expiry_feed, input_holds)
    await reconciler.reconcile_name(created.metadata.name)

    (pod,) = kube_emulator.list_objects(PODS_R)
    spec = pod["spec"]
    inputs, uploader = spec["initContainers"]  # ours first: nothing starts before it ends
    assert (inputs["name"], uploader["name"]) == (INPUTS_CONTAINER, UPLOADER_CONTAINER)
    assert inputs["image"] == "registry.example/artifacts-controller:1.2"  # the uploader's
    assert inputs["command"] == [
        "python", "-m", "artifacts_controller.inputs", "--message-file", "/dev/termination-log"
    ]  # fmt: skip
    assert inputs["envFrom"] == [{"secretRef": {"name": "artifacts-s3"}}]
    assert inputs["terminationMessagePath"] == "/dev/termination-log"
    env = _env(inputs)
    assert json.loads(env.pop("PHJOB_INPUT_ARTIFACTS")) == [
        {"jobId": seed, "path": "sub", "groupName": "ML_Team", "fileCount": 1, "totalSize": 6}
    ]
    assert env == {
        "PHJOB_NAME": created.metadata.name,
        "PHJOB_ARTIFACT_LIMIT_SIZE_MB": "100",
        "PHJOB_INPUTS_DIR": "/phjob-inputs",
        "PHFS_BUCKET": bucket,
        "S3_REGION": s3_pod_settings.s3_region,
        "S3_ENDPOINT_URL": s3_pod_settings.s3_endpoint_url,
    }
    assert inputs["volumeMounts"] == [{"name": "inputs", "mountPath": "/phjob-inputs"}]
    (container,) = spec["containers"]
    assert container["name"] == JOB_CONTAINER
    assert {"name": "inputs", "mountPath": "/home/jovyan/inputs", "readOnly": True} in container[
        "volumeMounts"
    ]
    # The trust boundary: the job's container gets no S3 address, key or Secret.
    assert not any(name.startswith("S3_") for name in _env(container))
    assert "envFrom" not in container
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["inputs"] == {"name": "inputs", "emptyDir": {}}

    # Run the init container against the real bucket, into the volume the job then mounts.
    placed = _run_init_container(inputs, s3_pod_settings, job.home / "inputs", tmp_path / "msg")
    assert placed.returncode == 0, placed.stderr
    assert "placed 1 files (6 bytes) of 1 jobs" in placed.stderr
    assert not (tmp_path / "msg").exists()
    # Then the job container: run-job.sh over the placed inputs, with the pod's env...
    job.use_s3_delivery()
    staging = {"PHJOB_ARTIFACT_STAGING": str(job.staging)}  # where its volume is here
    run = job.run(container["command"][1], env=_env(container) | staging)
    assert run.returncode == 0, run.stderr
    # ...and the uploader sidecar, as the pod runs it, delivers the job's own artifacts.
    secret = s3_pod_settings.s3_secret_access_key
    uploaded = subprocess.run(
        [sys.executable, "-m", "artifacts_controller.uploader", "--wait-timeout", "0"],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **_env(uploader),
            **staging,
            "S3_ACCESS_KEY_ID": s3_pod_settings.s3_access_key_id or "",
            "S3_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else "",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert uploaded.returncode == 0, uploaded.stderr
    assert await artifacts_of(s3, bucket, created) == {"ran": b"", "got.txt": HELLO}


async def test_a_tampered_input_fails_the_pod_with_the_init_containers_one_line(
    kube: Kube,
    s3_pod_settings: ControllerSettings,
    s3: S3Client,
    redis: Redis,
    expiry_feed: ExpiryFeed,
    input_holds: InputHolds,
    tmp_path: Path,
) -> None:
    bucket = s3_pod_settings.phfs_bucket
    seed = new_job_id()
    prefix = await deliver_seed(s3, bucket, seed, group="ML_Team")
    await s3.put_object(Bucket=bucket, Key=f"{prefix}sub/test.txt", Body=b"HELLO\n")
    created = await create_phjob(
        kube, command=_reads(seed), input_artifacts=(_sub_of(seed, "ML_Team"),)
    )
    await input_holds.hold(created.metadata.name, [prefix], now=1e10)
    reconciler = _reconciler(kube, s3_pod_settings, s3, expiry_feed, input_holds)
    await reconciler.reconcile_name(created.metadata.name)
    pod = await kube.get(PODS, created.metadata.name)
    assert pod is not None
    inputs = pod["spec"]["initContainers"][0]
    message_file = tmp_path / "termination-log"
    placed = _run_init_container(inputs, s3_pod_settings, tmp_path / "inputs", message_file)
    assert placed.returncode == 1
    said = message_file.read_text()
    assert said == (
        f"the input artifacts could not be placed: inputs/{seed}/'sub/test.txt': its sha256 "
        "or size differs from the source manifest's (the object was changed after it was "
        "collected); the command was not run"
    )
    assert not (tmp_path / "inputs" / seed / "sub" / "test.txt").exists()
    # The kubelet reports the init container's end, with that file as its message.
    terminated = {
        "exitCode": 1,
        "reason": "Error",
        "message": said,
        "startedAt": "2026-01-01T00:00:02Z",
        "finishedAt": "2026-01-01T00:00:03Z",
    }
    await kube.patch(
        PODS,
        created.metadata.name,
        {
            "status": {
                "phase": "Failed",
                "startTime": "2026-01-01T00:00:01Z",
                "initContainerStatuses": [
                    {"name": INPUTS_CONTAINER, "state": {"terminated": terminated}}
                ],
                "containerStatuses": [
                    {"name": JOB_CONTAINER, "state": {"waiting": {"reason": "PodInitializing"}}}
                ],
            }
        },
        subresource="status",
    )
    await reconciler.reconcile_name(created.metadata.name)
    status = (await read_phjob(kube, created.metadata.name)).status
    assert status.phase is PhJobPhase.FAILED
    assert (status.reason, status.message) == ("InputsFailed", said)
    assert await redis.zrange(f"{INPUT_HOLDS_KEY}{prefix}", 0, -1) == []  # released: it ended


async def test_a_phjob_deleted_before_it_started_releases_its_inputs(
    kube: Kube,
    controller_settings: ControllerSettings,
    expiry_feed: ExpiryFeed,
    redis: Redis,
    input_holds: InputHolds,
) -> None:
    seed = new_job_id()
    prefix = job_prefix("ML_Team", seed)
    async with running_controller(kube, controller_settings, expiry_feed):
        created = await create_phjob(
            kube, command="true", input_artifacts=(_sub_of(seed, "ML_Team"),)
        )
        await input_holds.hold(created.metadata.name, [prefix], now=1e10)
        await kube.delete(PHJOBS, created.metadata.name)

        async def released() -> bool:
            return await redis.zrange(f"{INPUT_HOLDS_KEY}{prefix}", 0, -1) == []

        await eventually(released, timeout=10, what="the deleted job's hold to go")
