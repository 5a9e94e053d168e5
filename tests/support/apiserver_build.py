"""kube-apiserver built from Debian's ``kubernetes`` source, once per version, into a cache.

No package registry ships kube-apiserver, but Debian's ``kubernetes`` source package (1.20,
with its ``vendor/`` tree) builds it with Debian's Go. Debian's own build makes only kubectl,
so this module fetches that source through apt, generates the one file upstream's ``make``
generates before a build (``make gen_openapi``), builds ``cmd/kube-apiserver`` the way the
source's ``hack/`` scripts do (GOPATH mode, vendored dependencies, static), and keeps the
binary in ``~/.cache/job-artifacts/kube-apiserver-<Debian version>/`` outside the repo, where
later runs on the same machine find it. Nothing it downloads or builds is in the work tree.

One change to the source: its vendored ``reflect2`` 1.0.1 crashes under Go 1.18 or newer as
soon as a custom object is created (it reads runtime internals that moved), so the build
uses Debian's ``golang-github-modern-go-reflect2-dev`` (1.0.2, the release that fixed it).

The source lists come from the machine's own apt sources (their ``deb`` entries read as
``deb-src``) in a private apt state under the cache, so the machine's apt configuration is
left alone and no archive's address is written here. A cached run asks no network: the
version is read from the lists fetched by the build.

``python tests/support/apiserver_build.py`` builds if needed and prints the binary's path;
``kube_apiserver()`` does the same for the test fixture. Run as root it installs the Debian
packages it needs (``etcd-server`` to run; Go, reflect2, dpkg-dev and rsync to build); otherwise it
names them and stops.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ETCD", "BuildError", "cache_root", "ensure_runtime_packages", "kube_apiserver"]

SOURCE_PACKAGE = "kubernetes"
ETCD = Path("/usr/bin/etcd")
RUNTIME_PACKAGES = {"etcd-server": ETCD}
BUILD_PACKAGES = {
    "golang-go": Path("/usr/bin/go"),
    "golang-github-modern-go-reflect2-dev": Path(
        "/usr/share/gocode/src/github.com/modern-go/reflect2"
    ),
    "dpkg-dev": Path("/usr/bin/dpkg-source"),
    "rsync": Path("/usr/bin/rsync"),  # the source's hack/ scripts copy with it
}
REFLECT2 = BUILD_PACKAGES["golang-github-modern-go-reflect2-dev"]
SYSTEM_SOURCES = Path("/etc/apt/sources.list.d")
BINARY = "kube-apiserver"


class BuildError(Exception):
    """The binary cannot be had here; the message says what is missing."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "job-artifacts"


def _say(message: str) -> None:
    print(f"kube-apiserver: {message}", file=sys.stderr, flush=True)


def _run(command: Sequence[str | Path], **kwargs: object) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise BuildError(f"{' '.join(map(str, command[:3]))} failed ({result.returncode}):\n{tail}")
    return result.stdout


def _install(packages: dict[str, Path]) -> None:
    missing = sorted(name for name, path in packages.items() if not path.exists())
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(f"needs the Debian packages {' '.join(missing)}: apt-get install them")
    _say(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def ensure_runtime_packages() -> None:
    """etcd, which the tier runs beside kube-apiserver."""
    _install(RUNTIME_PACKAGES)


class _SourceLists:
    """A private apt state holding the machine's archives as source (``deb-src``) lists."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "sources.list.d"
        self.lists = root / "lists"
        self.archives = root / "cache"

    def options(self) -> list[str]:
        return [
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={self.parts}",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.archives}",
        ]  # fmt: skip

    def update(self) -> None:
        """Fetch the source lists of every archive the machine installs packages from."""
        for folder in (self.parts, self.lists / "partial", self.archives / "archives" / "partial"):
            folder.mkdir(parents=True, exist_ok=True)
        for old in self.parts.iterdir():
            old.unlink()
        copied = 0
        for path in sorted(SYSTEM_SOURCES.glob("*.sources")):
            text = path.read_text(encoding="utf-8")
            # deb822 stanzas: the same archives, their source indices.
            text = re.sub(r"(?m)^Types:.*$", "Types: deb-src", text)
            (self.parts / path.name).write_text(text, encoding="utf-8")
            copied += 1
        legacy = [Path("/etc/apt/sources.list"), *sorted(SYSTEM_SOURCES.glob("*.list"))]
        for path in legacy:
            if not path.is_file():
                continue
            lines = [
                re.sub(r"^deb\s", "deb-src ", line)
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.startswith("deb ")
            ]
            if lines:
                (self.parts / f"{path.stem}-src.list").write_text("\n".join(lines) + "\n")
                copied += 1
        if not copied:
            raise BuildError(f"no apt sources in {SYSTEM_SOURCES} to fetch {SOURCE_PACKAGE} from")
        _run(["apt-get", *self.options(), "update", "-qq"])

    def version(self) -> str | None:
        """The newest version of the source package the lists know, None without lists."""
        if not any(self.lists.glob("*Sources*")):
            return None
        text = _run(["apt-cache", *self.options(), "showsrc", SOURCE_PACKAGE])
        versions = re.findall(r"(?m)^Version: (\S+)$", text)
        if not versions:
            return None
        newest = versions[0]
        for candidate in versions[1:]:
            if _dpkg_newer(candidate, newest):
                newest = candidate
        return newest

    def download(self, version: str, into: Path) -> Path:
        """The ``.dsc`` and its tarballs of ``version`` in ``into``; returns the ``.dsc``."""
        _run(
            ["apt-get", *self.options(), "source", "--download-only", "-qq",
             f"{SOURCE_PACKAGE}={version}"],
            cwd=into,
        )  # fmt: skip
        (dsc,) = into.glob("*.dsc")
        return dsc


def _dpkg_newer(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def upstream_version(debian_version: str) -> str:
    """``1.20.5+really1.20.2-1.1+deb12u1`` -> ``1.20.2``: what the source really is."""
    upstream = debian_version.split(":")[-1].rsplit("-", 1)[0]
    return upstream.split("+really", 1)[-1].split("+", 1)[0]


def _works(binary: Path) -> bool:
    if not binary.is_file():
        return False
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.returncode == 0 and result.stdout.startswith("Kubernetes v")


def _go_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        # As the source's hack/lib/init.sh: GOPATH mode, the vendor/ tree, no cgo.
        "GO111MODULE": "off",
        "GOPATH": str(work / "gopath"),
        "GOCACHE": str(work / "gocache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }


def _build(version: str, lists: _SourceLists, target: Path) -> None:
    _install(BUILD_PACKAGES)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kube-apiserver-build-", dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "dl").mkdir()
        _say(f"fetching Debian's {SOURCE_PACKAGE} {version} source")
        dsc = lists.download(version, work / "dl")
        source = work / "gopath" / "src" / "k8s.io" / "kubernetes"
        source.parent.mkdir(parents=True)
        _run(["dpkg-source", "-x", dsc, source])
        vendored = source / "vendor" / "github.com" / "modern-go" / "reflect2"
        shutil.rmtree(vendored)
        shutil.copytree(REFLECT2, vendored)
        # The one generated file the source does not ship (upstream's `make` writes it
        # before every build): the OpenAPI definitions kube-apiserver serves.
        _say("generating the OpenAPI definitions (make gen_openapi)")
        _run(["make", "gen_openapi"], cwd=source, env=_go_env(work))
        package = "k8s.io/kubernetes/vendor/k8s.io/component-base/version"
        upstream = upstream_version(version)
        major, minor = upstream.split(".")[:2]
        ldflags = " ".join(
            f"-X {package}.{key}={value}"
            for key, value in {
                "gitVersion": f"v{upstream}",
                "gitMajor": major,
                "gitMinor": minor,
                "gitTreeState": "clean",
                "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }.items()
        )
        env = _go_env(work)
        _say(f"building v{upstream} with {_run(['go', 'version']).strip()} (minutes)")
        partial = work / BINARY
        _run(
            ["go", "build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", partial,
             "k8s.io/kubernetes/cmd/kube-apiserver"],
            cwd=source,
            env=env,
        )  # fmt: skip
        if not _works(partial):
            raise BuildError(f"the built {BINARY} does not run")
        partial.replace(target)
    seconds = time.monotonic() - started
    (target.parent / "BUILD-INFO").write_text(
        f"source: Debian {SOURCE_PACKAGE} {version}\nreflect2: Debian's, from {REFLECT2}\n"
        f"go: {_run(['go', 'version']).strip()}\nbuild seconds: {seconds:.0f}\n",
        encoding="utf-8",
    )
    _say(f"built {target} in {seconds:.0f} s")


def kube_apiserver() -> Path:
    """The cached kube-apiserver for the newest Debian source version, built if missing."""
    ensure_runtime_packages()
    lists = _SourceLists(cache_root() / "apt-sources")
    version = lists.version()
    if version is not None:
        cached = cache_root() / f"{BINARY}-{version}" / BINARY
        if _works(cached):
            return cached
    lists.update()
    version = lists.version()
    if version is None:
        raise BuildError(f"no apt source lists the {SOURCE_PACKAGE} source package")
    target = cache_root() / f"{BINARY}-{version}" / BINARY
    if not _works(target):
        _build(version, lists, target)
    return target


if __name__ == "__main__":
    try:
        print(kube_apiserver())
    except BuildError as err:
        sys.exit(f"kube-apiserver: {err}")
