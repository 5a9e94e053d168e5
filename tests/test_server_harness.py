"""The test servers never share a port with another worker's: a taken port means new ports.

pytest-xdist workers start their session servers at the same moment and may pick the same
free port; the loser's ready check must not be answered by the winner's server.
"""

from __future__ import annotations

import socket

from support.servers import RedisServer, S3Server


def _keys(server: RedisServer) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"DBSIZE\r\n")
        return sock.recv(32)


def test_a_redis_whose_port_is_taken_starts_on_another_and_flushes_only_its_own() -> None:
    first = RedisServer().start()
    second = RedisServer()
    second.port, second.url = first.port, first.url  # as if both workers had picked it
    try:
        with socket.create_connection(("127.0.0.1", first.port), timeout=5) as sock:
            sock.sendall(b"SET kept 1\r\n")
            assert sock.recv(16).startswith(b"+OK")
        second.start()
        second.flush()

        assert second.port != first.port
        assert _keys(first) == b":1\r\n"
    finally:
        second.stop()
        first.stop()


def test_a_seaweedfs_whose_ports_are_taken_starts_on_others() -> None:
    first = S3Server().start()
    second = S3Server()
    second.ports, second.url = first.ports, first.url
    try:
        second.start()
        second.create_bucket("only-on-the-second")

        assert second.url != first.url
        names = [b["Name"] for b in first.client.list_buckets()["Buckets"]]
        assert "only-on-the-second" not in names
    finally:
        second.close()
        first.close()
