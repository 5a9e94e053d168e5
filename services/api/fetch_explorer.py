"""Put the GraphiQL explorer's files into the api package, from the npm registry.

``explorer.txt`` pins the npm packages (``name@version`` lines); ``npm pack`` fetches each
one's tarball from the registry npm is configured with (and checks its integrity), and
the few files the explorer page loads are copied into ``src/artifacts_api/graphiql/vendor/``,
which git ignores: the api ships them, the repository does not. ``make venv`` and the
api's Dockerfile run this; it does nothing when the files for these pins are already there,
and without npm it only warns: the api works without them, its explorer page says so.

Usage: ``python services/api/fetch_explorer.py`` (needs ``npm`` on the PATH).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS = HERE / "explorer.txt"
VENDOR = HERE / "src" / "artifacts_api" / "graphiql" / "vendor"
STAMP = VENDOR / "VERSIONS"
WANTED = {
    "graphiql": ["graphiql.min.js", "graphiql.min.css"],
    "react": ["umd/react.production.min.js"],
    "react-dom": ["umd/react-dom.production.min.js"],
}
"""Per package, the files the explorer page loads (paths inside the package)."""


def pins() -> list[str]:
    lines = (line.strip() for line in PINS.read_text(encoding="utf-8").splitlines())
    found = [line for line in lines if line and not line.startswith("#")]
    names = {spec.rsplit("@", 1)[0] for spec in found}
    if names != set(WANTED) or any(spec.count("@") != 1 for spec in found):
        raise SystemExit(f"{PINS}: expected one name@version line for each of {sorted(WANTED)}")
    return found


def main() -> int:
    specs = pins()
    stamp = "\n".join(specs) + "\n"
    files = [VENDOR / Path(name).name for names in WANTED.values() for name in names]
    if (
        STAMP.exists()
        and STAMP.read_text(encoding="utf-8") == stamp
        and all(path.exists() for path in files)
    ):
        STAMP.touch()  # newer than this script and the pins: make is satisfied
        return 0
    npm = shutil.which("npm")
    if npm is None:
        # Not fatal: the api runs without them, and its explorer page says what is missing.
        print(
            "fetch_explorer: npm not found; the GraphiQL explorer (GET /graphql in a browser) "
            "stays empty until npm is installed (Debian: apt-get install npm) and this runs",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        packed = subprocess.run(
            [npm, "pack", "--json", "--pack-destination", scratch, *specs],
            check=True,
            capture_output=True,
            text=True,
            cwd=scratch,
        )
        VENDOR.mkdir(parents=True, exist_ok=True)
        for package in json.loads(packed.stdout):
            with tarfile.open(Path(scratch) / package["filename"]) as archive:
                for name in WANTED[package["name"]]:
                    member = archive.extractfile(f"package/{name}")
                    if member is None:
                        raise SystemExit(f"{package['id']} has no {name}")
                    (VENDOR / Path(name).name).write_bytes(member.read())
    STAMP.write_text(stamp, encoding="utf-8")
    print(f"fetch_explorer: {', '.join(specs)} -> {VENDOR.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
