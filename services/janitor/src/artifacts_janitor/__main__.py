"""`python -m artifacts_janitor`: read the settings, then run the janitor."""

from __future__ import annotations

import sys

from artifacts_janitor.settings import JanitorSettings
from artifacts_shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        load_settings(JanitorSettings)
    except SettingsError as err:
        sys.exit(f"janitor: {err}")
    # The service itself lands with issue 6; refuse to pretend it runs.
    sys.exit("janitor: not implemented yet (issue 6)")


if __name__ == "__main__":
    main()
