"""The dev stack of `make run`, started by tests the same way: devstack/run.py on free ports.

Every process of a stack carries ``DEVSTACK_DATA`` (its own temporary folder) in its
environment, which is how ``leftover_processes`` finds any that outlived a stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config
from seaweedfs import SeaweedPorts, credentials

from support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_MARK = "Job artifacts is ready: "


def stack_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The stack must not inherit a developer's or CI's own service settings.
        if not key.startswith(
            (
                "S3_",
                "API_",
                "REDIS_",
                "ARTIFACT_",
                "JANITOR_",
                "CONTROLLER_",
                "LOCAL_",
                "PHFS_",
                "DEVSTACK_",
                "KUBE",
            )
        )
    }
    seaweed = SeaweedPorts.free()
    env.update(
        DEVSTACK_DATA=str(data_dir),
        API_PORT=str(free_port()),
        DEVSTACK_S3_PORT=str(seaweed.s3),
        DEVSTACK_SEAWEEDFS_PORTS=str(seaweed.s3_grpc),  # the first of the internal ones
        CONTROLLER_PROBE_PORT=str(free_port()),
        JANITOR_METRICS_PORT=str(free_port()),
    )
    env.update(overrides)
    return env


@dataclass
class DevStack:
    data_dir: Path
    env: dict[str, str]
    log: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.env['DEVSTACK_S3_PORT']}"

    @property
    def bucket(self) -> str:
        return self.env.get("PHFS_BUCKET", "phfs")

    def s3_client(self) -> Any:
        """A boto3 client with the key the stack made for its S3 server on first start."""
        key = credentials(self.data_dir / "seaweedfs" / "s3.json")
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    @property
    def redis_url(self) -> str:
        return f"unix://{self.data_dir}/redis.sock"

    def start(self, timeout: float = 120.0) -> DevStack:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "devstack" / "run.py")],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.log.append(line.rstrip("\n"))
                if READY_MARK in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the dev stack did not come up:\n" + "\n".join(self.log[-60:]))
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C, as a person would; returns the launcher's exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def leftover_processes(self) -> list[psutil.Process]:
        return leftover_processes(self.data_dir)


def leftover_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DEVSTACK_DATA") == str(data_dir):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
