from __future__ import annotations

import json

import pytest

from artifacts_shared.instance_types import (
    InstanceTypeSettings,
    UnknownInstanceTypeError,
)
from artifacts_shared.settings import SettingsError, load_settings


def test_the_defaults_are_primehubs_smallest_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INSTANCE_TYPES", raising=False)
    settings = load_settings(InstanceTypeSettings)
    cpu1 = settings.instance_type("cpu-1")
    assert [preset.name for preset in settings.instance_types] == ["cpu-1", "cpu-2"]
    assert (cpu1.cpu_limit, cpu1.memory_limit, cpu1.gpu_limit, cpu1.is_global) == (1, 1, 0, True)
    assert cpu1.pod_resources() == {"limits": {"cpu": "1", "memory": "1G"}}


def test_presets_are_read_from_json_in_primehubs_field_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preset = {
        "name": "gpu-1",
        "displayName": "GPU 1",
        "cpuLimit": 0.5,
        "memoryLimit": 2,
        "gpuLimit": 1,
        "groups": ["ml_team"],
    }
    monkeypatch.setenv("INSTANCE_TYPES", json.dumps([preset]))
    settings = load_settings(InstanceTypeSettings)
    gpu = settings.instance_type("gpu-1")
    assert gpu.display_name == "GPU 1" and not gpu.is_global
    assert gpu.offered_to("ml_team") and not gpu.offered_to("other")
    assert gpu.pod_resources() == {"limits": {"cpu": "0.5", "memory": "2G", "nvidia.com/gpu": "1"}}


def test_an_unknown_name_says_which_names_exist() -> None:
    settings = load_settings(InstanceTypeSettings)
    with pytest.raises(UnknownInstanceTypeError, match=r"'gpu-9'.*cpu-1, cpu-2"):
        settings.instance_type("gpu-9")


@pytest.mark.parametrize(
    "presets",
    [
        '[{"name": "a"}, {"name": "a"}]',
        '[{"name": "a", "cpuLimit": 1, "cpuRequest": 2}]',
        '[{"name": "Has Spaces"}]',
        '[{"name": "a", "cpuLimit": -1}]',
        '[{"name": "a", "cpuLimt": 1}]',
        "not json",
    ],
    ids=["duplicate", "request-above-limit", "bad-name", "negative", "typo", "not-json"],
)
def test_a_bad_preset_list_stops_the_service_with_one_line(
    monkeypatch: pytest.MonkeyPatch, presets: str
) -> None:
    monkeypatch.setenv("INSTANCE_TYPES", presets)
    with pytest.raises(SettingsError) as caught:
        load_settings(InstanceTypeSettings)
    message = str(caught.value)
    assert "\n" not in message and "INSTANCE_TYPES" in message
