"""npm packages for tests, installed from the npm registry into the virtualenv (never the tree).

Each set of pins (a file of ``name@version`` lines beside the test that needs them) gets a
folder of its own under ``<venv>/node/``, named after the pins' hash: installed once, then
reused; changing a pin installs afresh. ``--no-save --no-package-lock`` keeps npm from writing
a lock file with download addresses anywhere.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["node_modules", "node_path", "read_pins"]


def read_pins(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def node_path() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node: install Debian's nodejs and npm (.ci/run does)")
    return node


def node_modules(pins_file: Path) -> Path:
    """The ``node_modules`` folder holding the pinned packages, installing them if needed."""
    pins = read_pins(pins_file)
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no npm: install Debian's npm (.ci/run does)")
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    prefix = Path(sys.prefix) / "node" / f"{pins_file.stem}-{digest}"
    done = prefix / ".installed"
    if not done.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
             "--prefix", str(prefix), *pins],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
        done.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return prefix / "node_modules"
