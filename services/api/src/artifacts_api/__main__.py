"""`python -m artifacts_api`: read the settings, then run the api."""

from __future__ import annotations

import sys

from artifacts_api.settings import ApiSettings
from artifacts_shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        load_settings(ApiSettings)
    except SettingsError as err:
        sys.exit(f"api: {err}")
    # The service itself lands with issue 5; refuse to pretend it runs.
    sys.exit("api: not implemented yet (issue 5)")


if __name__ == "__main__":
    main()
