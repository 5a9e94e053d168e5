"""PrimeHub's own Python SDK (its ``primehub`` CLI), as its users run it against our api.

The SDK is installed from the package registry into a virtualenv of its own, outside the
tree and apart from the product's (``<venv>/primehub-sdk-<hash of the pins>``): the
product's environment must not learn to work only because the SDK's dependencies are there.
Each command runs as a new process with the endpoint, token and group PrimeHub users pass,
and a home folder of its own, so no ``~/.primehub/config.json`` is read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PrimeHubCli", "install_sdk"]


def install_sdk(pins_file: Path) -> Path:
    """The ``primehub`` executable of a virtualenv holding exactly the pinned SDK."""
    pins = pins_file.read_text(encoding="utf-8")
    digest = hashlib.sha256(pins.encode()).hexdigest()[:16]
    home = Path(sys.prefix) / f"primehub-sdk-{digest}"
    executable = home / "bin" / "primehub"
    if not (home / ".installed").exists():
        venv.create(home, with_pip=True, clear=True)
        subprocess.run(
            [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "-r", str(pins_file)],
            check=True,
            capture_output=True,
            timeout=600,
        )  # fmt: skip
        (home / ".installed").write_text(pins, encoding="utf-8")
    assert executable.exists(), f"no primehub CLI in {home}"
    return executable


@dataclass
class PrimeHubCli:
    executable: Path
    endpoint: str
    group: str
    home: Path
    token: str = "dev-token"

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """``primehub --endpoint ... --token ... --group ... --json <args>``; its stdout."""
        done = self.call(*args, stdin=stdin, timeout=timeout)
        assert done.returncode == 0, (
            f"primehub {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def call(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The same command, however it ends."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
        }
        return subprocess.run(
            [str(self.executable), "--endpoint", self.endpoint, "--token", self.token,
             "--group", self.group, "--json", *args],
            input=stdin if stdin is not None else "",
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )  # fmt: skip

    def json(self, *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
        return json.loads(self.run(*args, stdin=stdin, timeout=timeout))
