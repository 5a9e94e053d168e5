"""``python -m artifacts_client``: the ``jobartifacts`` CLI, for when scripts are not on PATH."""

from artifacts_client.cli import main

if __name__ == "__main__":
    main()
