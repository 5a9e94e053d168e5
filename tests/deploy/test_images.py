"""The Dockerfiles and the build context, read as text (there is no Docker engine here).

Each image installs only the shared library and its own service from the pinned constraints,
runs the service's ``python -m`` entry point as a numeric non-root user, and has a health
check on the port its settings say; ``.dockerignore`` sends the builder only what the COPY
lines need.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.deploy import ROOT

SERVICES = ("api", "controller", "janitor")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blanks dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1] :]


def dockerfile(service: str) -> list[Instruction]:
    return parse_dockerfile((ROOT / "services" / service / "Dockerfile").read_text())


def _one(instructions: list[Instruction], keyword: str) -> str:
    (found,) = (ins.arguments for ins in instructions if ins.keyword == keyword)
    return found


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


@pytest.mark.parametrize("service", SERVICES)
def test_image_is_slim_python_running_the_entry_point_as_non_root(service: str) -> None:
    instructions = dockerfile(service)
    args = {
        key: value
        for ins in instructions
        if ins.keyword == "ARG"
        for key, _, value in [ins.arguments.partition("=")]
    }
    stage = final_stage(instructions)
    base = stage[0].arguments.split()[0]
    image = args.get(base.strip("${}"), base)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", image), image

    user = _one(stage, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user

    assert _one(stage, "CMD") == f'["python", "-m", "artifacts_{service}"]'
    assert importlib.util.find_spec(f"artifacts_{service}.__main__") is not None
    assert _one(stage, "HEALTHCHECK").split()[-1] != "NONE"


@pytest.mark.parametrize("service", SERVICES)
def test_image_installs_only_its_own_distributions_from_the_constraints(service: str) -> None:
    instructions = dockerfile(service)
    sources = {
        ins.arguments.split()[0]
        for ins in instructions
        if ins.keyword == "COPY" and not ins.arguments.startswith("--from")
    }
    assert sources == {"constraints.txt", "shared/", f"services/{service}/"}
    installs = [
        ins.arguments
        for ins in instructions
        if ins.keyword == "RUN" and "pip install" in ins.arguments
    ]
    assert installs, "no pip install"
    for command in " ".join(installs).split("&&"):
        words = shlex.split(command)
        if "install" not in words:
            continue
        assert words[words.index("-c") + 1] == "constraints.txt", command
        local = {w for w in words if w.startswith("./")}
        assert local <= {"./shared", f"./services/{service}"}, command
    assert f"./services/{service}" in " ".join(installs)


def test_health_checks_use_the_ports_the_images_configure() -> None:
    api = final_stage(dockerfile("api"))
    assert _env(api)["API_PORT"] == "8080"
    assert "EXPOSE 8080" in {f"{i.keyword} {i.arguments}" for i in api}
    assert "'API_PORT', '8080'" in _one(api, "HEALTHCHECK")
    assert "/healthz" in _one(api, "HEALTHCHECK")
    controller = final_stage(dockerfile("controller"))
    port = _env(controller)["CONTROLLER_PROBE_PORT"]
    assert f"'CONTROLLER_PROBE_PORT', '{port}'" in _one(controller, "HEALTHCHECK")
    janitor = final_stage(dockerfile("janitor"))
    assert _one(janitor, "HEALTHCHECK").endswith("python -m artifacts_janitor --check")


def test_the_api_image_fetches_the_explorer_files_into_the_package_it_installs() -> None:
    runs = [ins.arguments for ins in dockerfile("api") if ins.keyword == "RUN"]
    (build,) = [run for run in runs if "fetch_explorer.py" in run]
    # Fetched first, so the non-editable install copies them into site-packages.
    assert build.index("python services/api/fetch_explorer.py") < build.index("./services/api")
    rules = dockerignore()
    assert not ignored("services/api/fetch_explorer.py", rules)
    assert not ignored("services/api/explorer.txt", rules)
    assert ignored("services/api/notes.md", rules)  # the allow-list stays narrow


def test_parser_joins_continued_lines_and_skips_comments() -> None:
    parsed = parse_dockerfile("# c\nFROM a AS b\nRUN x \\\n  # inner\n  && y\nUSER 1\n")
    assert parsed == [
        Instruction("FROM", "a AS b"),
        Instruction("RUN", "x && y"),
        Instruction("USER", "1"),
    ]


# --- .dockerignore ---------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching: Go path globs, ``**`` across folders."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignored(path: str, rules: list[str]) -> bool:
    """Whether the builder is not sent ``path``: the last rule matching it or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = _pattern(rule.lstrip("!").strip("/"))
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _files(folder: Path) -> list[str]:
    return [
        str(p.relative_to(ROOT))
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
    ]


def test_the_build_context_holds_every_source_the_images_copy() -> None:
    rules = dockerignore()
    needed = ["constraints.txt"]
    for member in ("shared", *(f"services/{s}" for s in SERVICES)):
        needed += [f"{member}/pyproject.toml", *_files(ROOT / member / "src")]
    assert [path for path in needed if ignored(path, rules)] == []


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        ".data/jobs/job-1.json",
        "tests/conftest.py",
        "helm/values.yaml",
        "bench/common.py",
        "docker-compose.yml",
        "services/api/src/artifacts_api/__pycache__/settings.cpython-311.pyc",
        "shared/src/artifacts_shared.egg-info/PKG-INFO",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert ignored(path, dockerignore())


def test_the_matcher_lets_a_later_rule_win() -> None:
    rules = ["*", "!keep/", "keep/**/*.pyc"]
    assert ignored("other.txt", rules)
    assert not ignored("keep/a.py", rules)
    assert ignored("keep/sub/a.pyc", rules)
