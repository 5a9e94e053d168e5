"""The controller's own settings: defaults that work, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from artifacts_controller.settings import ControllerSettings
from artifacts_shared.settings import SettingsError, load_settings


def test_the_defaults_run_a_kubernetes_controller_with_the_contract_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CONTROLLER_RUNTIME", "ARTIFACT_DELIVERY", "KUBE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(ControllerSettings)
    assert (settings.controller_runtime, settings.artifact_delivery) == ("kubernetes", "phfs")
    assert settings.job_termination_grace_seconds >= 30
    assert settings.controller_lease_renew_seconds * 2 <= settings.controller_lease_seconds
    assert settings.controller_identity  # hostname-pid: unique per replica


def test_a_renewal_period_longer_than_half_the_lease_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTROLLER_LEASE_SECONDS", "6")
    monkeypatch.setenv("CONTROLLER_LEASE_RENEW_SECONDS", "4")
    with pytest.raises(SettingsError) as refused:
        load_settings(ControllerSettings)
    message = str(refused.value)
    assert "\n" not in message
    assert "CONTROLLER_LEASE_RENEW_SECONDS='4'" in message
    assert "at most half of CONTROLLER_LEASE_SECONDS" in message
