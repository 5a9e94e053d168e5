"""The janitor's own settings: how a rescan period is written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from artifacts_janitor.settings import JanitorSettings
from artifacts_shared.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("written", "period"),
    [
        (None, timedelta(days=7)),
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("86400", timedelta(days=1)),
        (" 3600s ", timedelta(hours=1)),
        ("365d", timedelta(days=365)),
    ],
)
def test_the_rescan_period_is_seconds_or_a_number_with_a_unit(
    monkeypatch: pytest.MonkeyPatch, written: str | None, period: timedelta
) -> None:
    if written is not None:
        monkeypatch.setenv("JANITOR_RESCAN_EVERY", written)
    assert load_settings(JanitorSettings).janitor_rescan_every == period


@pytest.mark.parametrize("written", ["0", "59m", "366d", "1w", "-1d", "1.5d", "", "7 days"])
def test_a_rescan_period_out_of_range_or_unreadable_is_refused(
    monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    monkeypatch.setenv("JANITOR_RESCAN_EVERY", written)
    with pytest.raises(SettingsError, match=r"JANITOR_RESCAN_EVERY=.*: expected a duration"):
        load_settings(JanitorSettings)
