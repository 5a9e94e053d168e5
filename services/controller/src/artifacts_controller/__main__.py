"""`python -m artifacts_controller`: read the settings, then run the controller."""

from __future__ import annotations

import sys

from artifacts_controller.settings import ControllerSettings
from artifacts_shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        load_settings(ControllerSettings)
    except SettingsError as err:
        sys.exit(f"controller: {err}")
    # The service itself lands with issue 4; refuse to pretend it runs.
    sys.exit("controller: not implemented yet (issue 4)")


if __name__ == "__main__":
    main()
