"""The Kubernetes test harness behaves like an API server where our code depends on it.

Driven only through kubernetes-asyncio, as the controller and the api drive a real cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException
from support.kube import KubeEmulator

from artifacts_shared.phjob import API_GROUP, API_VERSION, PLURAL, PhJob, PhJobMetadata, PhJobSpec

PHJOBS = f"{API_GROUP}/{API_VERSION}/{PLURAL}"


def _phjob(name: str = "job-202601010000-abcdef") -> dict[str, Any]:
    job = PhJob(
        metadata=PhJobMetadata(name=name),
        spec=PhJobSpec(display_name="seed", group_name="ML_Team", command="echo hi"),
    )
    return job.to_k8s()


async def _create(api: k8s_client.ApiClient, namespace: str, body: dict[str, Any]) -> Any:
    return await k8s_client.CustomObjectsApi(api).create_namespaced_custom_object_with_http_info(
        API_GROUP, API_VERSION, namespace, PLURAL, body
    )


async def test_a_phjob_is_created_read_listed_and_patched_like_on_a_cluster(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    custom = k8s_client.CustomObjectsApi(kube_api)
    body = _phjob()
    body["status"] = {"phase": "Succeeded"}  # ignored: status is a subresource
    created, code, _headers = await _create(kube_api, kube_namespace, body)
    assert code == 201
    metadata = created["metadata"]
    assert metadata["namespace"] == kube_namespace
    assert metadata["uid"] and metadata["creationTimestamp"] and metadata["resourceVersion"]
    assert "status" not in created

    name = metadata["name"]
    fetched = await custom.get_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, name
    )
    assert PhJob.from_k8s(fetched).spec.group_name == "ML_Team"
    listed = await custom.list_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == [name]
    assert listed["metadata"]["resourceVersion"]

    patched = await custom.patch_namespaced_custom_object_status(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, name,
        {"status": {"phase": "Running"}, "spec": {"command": "ignored"}},
    )  # fmt: skip
    assert patched["status"] == {"phase": "Running"}
    assert patched["spec"]["command"] == "echo hi"
    assert int(patched["metadata"]["resourceVersion"]) > int(metadata["resourceVersion"])

    cancelled = await custom.patch_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL, name,
        {"spec": {"cancel": True}, "status": {"phase": "Failed"}},
    )  # fmt: skip
    assert cancelled["spec"]["cancel"] is True
    assert cancelled["status"] == {"phase": "Running"}

    with pytest.raises(ApiException) as conflict:
        await _create(kube_api, kube_namespace, _phjob(name))
    assert conflict.value.status == 409
    with pytest.raises(ApiException) as missing:
        await custom.get_namespaced_custom_object(API_GROUP, API_VERSION, "elsewhere", PLURAL, name)
    assert missing.value.status == 404


async def test_a_patch_with_a_stale_resource_version_is_a_conflict(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    core = k8s_client.CoreV1Api(kube_api)
    created = await core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    stale = created.metadata.resource_version
    await core.patch_namespaced_config_map(
        "cm", kube_namespace, {"metadata": {"resourceVersion": stale}, "data": {"a": "2"}}
    )
    with pytest.raises(ApiException) as conflict:
        await core.patch_namespaced_config_map(
            "cm", kube_namespace, {"metadata": {"resourceVersion": stale}, "data": {"a": "3"}}
        )
    assert conflict.value.status == 409
    current = await core.read_namespaced_config_map("cm", kube_namespace)
    assert current.data == {"a": "2"}


async def test_a_new_pod_starts_pending_and_its_status_changes_only_through_status(
    kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    core = k8s_client.CoreV1Api(kube_api)
    pod = {
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    created = await core.create_namespaced_pod(kube_namespace, pod)
    assert created.status.phase == "Pending"
    await core.patch_namespaced_pod_status("p", kube_namespace, {"status": {"phase": "Running"}})
    assert (await core.read_namespaced_pod("p", kube_namespace)).status.phase == "Running"
    labelled = await core.list_namespaced_pod(kube_namespace, label_selector="app=x")
    other = await core.list_namespaced_pod(kube_namespace, label_selector="app=y")
    assert [p.metadata.name for p in labelled.items] == ["p"] and other.items == []


async def _events(stream: k8s_watch.Watch, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async for event in stream:
        seen.append((event["type"], event["raw_object"]["metadata"]["name"]))
        if len(seen) == count:
            break
    return seen


async def test_a_watch_lists_then_follows_and_resumes_from_a_resource_version(
    kube_emulator: KubeEmulator, kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    custom = k8s_client.CustomObjectsApi(kube_api)
    first, _, _ = await _create(kube_api, kube_namespace, _phjob("job-202601010000-aaaaaa"))
    async with k8s_watch.Watch() as watch:
        stream = watch.stream(
            custom.list_namespaced_custom_object,
            API_GROUP, API_VERSION, kube_namespace, PLURAL,
            timeout_seconds=30,
        )  # fmt: skip
        reader = asyncio.create_task(_events(stream, 3))
        while kube_emulator.open_watches(PHJOBS) == 0:
            await asyncio.sleep(0.01)
        await _create(kube_api, kube_namespace, _phjob("job-202601010000-bbbbbb"))
        await custom.delete_namespaced_custom_object(
            API_GROUP, API_VERSION, kube_namespace, PLURAL, "job-202601010000-aaaaaa"
        )
        assert await asyncio.wait_for(reader, 5) == [
            ("ADDED", "job-202601010000-aaaaaa"),
            ("ADDED", "job-202601010000-bbbbbb"),
            ("DELETED", "job-202601010000-aaaaaa"),
        ]
    # Resuming after the first object's creation replays only what came after, deletion included.
    async with k8s_watch.Watch() as watch:
        stream = watch.stream(
            custom.list_namespaced_custom_object,
            API_GROUP, API_VERSION, kube_namespace, PLURAL,
            resource_version=first["metadata"]["resourceVersion"], timeout_seconds=30,
        )  # fmt: skip
        assert await asyncio.wait_for(_events(stream, 2), 5) == [
            ("ADDED", "job-202601010000-bbbbbb"),
            ("DELETED", "job-202601010000-aaaaaa"),
        ]


async def test_watches_can_be_disconnected_and_expired_by_the_test(
    kube_emulator: KubeEmulator, kube_api: k8s_client.ApiClient, kube_namespace: str
) -> None:
    custom = k8s_client.CustomObjectsApi(kube_api)
    created, _, _ = await _create(kube_api, kube_namespace, _phjob())
    version = created["metadata"]["resourceVersion"]

    async def read_all() -> list[str]:
        seen = []
        async with k8s_watch.Watch() as watch:
            stream = watch.stream(
                custom.list_namespaced_custom_object,
                API_GROUP, API_VERSION, kube_namespace, PLURAL,
                timeout_seconds=30,  # with a timeout, the stream ends instead of reconnecting
            )  # fmt: skip
            async for event in stream:
                seen.append(event["type"])
        return seen

    reader = asyncio.create_task(read_all())
    while kube_emulator.open_watches(PHJOBS) == 0:
        await asyncio.sleep(0.01)
    await kube_emulator.disconnect_watches()
    assert await asyncio.wait_for(reader, 5) == ["ADDED"]
    assert len(kube_emulator.requests_to("watch", PHJOBS)) == 1

    await kube_emulator.expire_watches()
    with pytest.raises(ApiException) as gone:
        async with k8s_watch.Watch() as watch:
            stream = watch.stream(
                custom.list_namespaced_custom_object,
                API_GROUP, API_VERSION, kube_namespace, PLURAL,
                resource_version=version, timeout_seconds=30,
            )  # fmt: skip
            await asyncio.wait_for(stream.__anext__(), 5)
    assert gone.value.status == 410
    # A relist gives a version the emulator accepts again.
    listed = await custom.list_namespaced_custom_object(
        API_GROUP, API_VERSION, kube_namespace, PLURAL
    )
    assert int(listed["metadata"]["resourceVersion"]) > int(version)
