"""A real Kubernetes API server for the cluster tier: Debian's etcd and kube-apiserver.

ARCHITECTURE section 9: besides kmock's emulator (``support/kube.py``), the controller and
the api are tested against kube-apiserver itself (built by ``support/apiserver_build.py``)
on etcd, both on free loopback ports we choose (etcd's client and peer ports, the API
server's secure port; its insecure port is off). The API server serves TLS with a
certificate made here (a throwaway CA and a serving certificate for 127.0.0.1 signed by it),
authorizes with RBAC only, authenticates an admin by a static token and everyone else by
real service-account tokens (the TokenRequest API, signed with a key made here), and writes
an audit log, so a test can read back every request a service made and how it was answered.

There is no controller-manager, scheduler or kubelet. Where a cluster's controllers would
act, the tests do it with the admin token and say so: they create a namespace's ``default``
ServiceAccount (the ServiceAccount admission plugin needs it for every pod), bind pods to a
node (the scheduler) and write pod status (the kubelet).

``Cluster.start()`` runs both processes and applies the chart's CRD; ``grant()`` makes a
namespace with the chart's ServiceAccounts, Roles and RoleBindings (rendered from helm/)
and returns each service's token; ``kubeconfig()`` writes a file a service can be pointed
at; ``restart_apiserver()`` restarts kube-apiserver on the same etcd, as a failed control-plane
node comes back; ``etcd_delete()`` changes what is stored while no API server watches (another
replica's write); ``audit_since()`` reads the audit log. ``bind_pod()`` and
``finish_pod_deletion()`` play the scheduler and the kubelet through any ``Kube`` client
(``support/phjobs.py``'s ``set_pod_status`` writes pod status).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from artifacts_controller.kube import PODS, Kube
from support.apiserver_build import ETCD
from support.deploy import chart_crds, component, render_chart
from support.servers import free_port

__all__ = [
    "TIMEOUT",
    "AuditEvent",
    "ChartNamespace",
    "Cluster",
    "ClusterError",
    "Identity",
    "bind_pod",
    "finish_pod_deletion",
]

ADMIN = "cluster-admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STARTUP_SECONDS = 90.0
TIMEOUT = 15.0
"""Seconds a test waits for a service's work here: a real server on a shared two-core
machine answers slower than the emulator."""
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")

# Every request, with its user, verb, object and answer; bodies are not needed.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


class ClusterError(Exception):
    """The cluster could not be started or asked; the message carries the server's words."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Identity:
    """A service account and a token the API server accepts for it."""

    namespace: str
    name: str
    token: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class ChartNamespace:
    """A namespace set up as the chart sets it up, and the services' identities there."""

    namespace: str
    controller: Identity
    api: Identity
    roles: Mapping[str, dict[str, Any]]
    """The rendered Role of each component, as applied."""


@dataclass(frozen=True)
class AuditEvent:
    """One answered request, from the API server's audit log."""

    user: str
    user_agent: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    uri: str
    code: int

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @classmethod
    def from_json(cls, event: Mapping[str, Any]) -> AuditEvent:
        ref = event.get("objectRef") or {}
        return cls(
            user=str((event.get("user") or {}).get("username", "")),
            user_agent=str(event.get("userAgent", "")),
            verb=str(event.get("verb", "")),
            group=str(ref.get("apiGroup", "")),
            resource=str(ref.get("resource", "")),
            subresource=str(ref.get("subresource", "")),
            namespace=str(ref.get("namespace", "")),
            name=str(ref.get("name", "")),
            uri=str(event.get("requestURI", "")),
            code=int((event.get("responseStatus") or {}).get("code") or 0),
        )


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a serving certificate for 127.0.0.1 signed by it, and the key that
    signs service-account tokens."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "job-artifacts test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "ca": _write_pem(folder / "ca.crt", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": _write_pem(
            folder / "serving.crt", serving.public_bytes(serialization.Encoding.PEM)
        ),
        "key": _write_pem(folder / "serving.key", _key_pem(key)),
        "sa": _write_pem(folder / "service-accounts.key", _key_pem(signing)),
    }


class Cluster:
    """etcd and kube-apiserver as child processes, owned by the caller (start, then stop)."""

    def __init__(self, folder: Path, apiserver: Path) -> None:
        self.folder = folder
        self.apiserver = apiserver
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(32)
        self.audit_log = folder / "audit.log"
        self._etcd: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._files: dict[str, Path] = {}
        self._ssl: ssl.SSLContext | None = None
        self._audit_offset = 0

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files = _make_certificates(self.folder)
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        tokens = self.folder / "tokens.csv"
        # token,user,uid,"groups": the admin, as a cluster's bootstrap credentials are.
        tokens.write_text(f'{self.admin_token},{ADMIN},{ADMIN},"system:masters"\n')
        tokens.chmod(0o600)
        policy = self.folder / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        try:
            self._start_etcd()
            self._start_apiserver()
            for crd in chart_crds():
                self.apply(crd)
                self._wait_established(crd["metadata"]["name"])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self._server, self._etcd):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._server = self._etcd = None

    @property
    def admin(self) -> Identity:
        """The static-token admin (``system:masters``), for what the tests play."""
        return Identity("", ADMIN, self.admin_token)

    @property
    def ca_file(self) -> Path:
        return self._files["ca"]

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        log = (self.folder / "etcd.log").open("ab")
        self._etcd = subprocess.Popen(
            [
                str(ETCD),
                "--name=tier",
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=tier={peer}",
                "--initial-cluster-state=new",
                # A test's etcd needs no durability across power loss.
                "--unsafe-no-fsync",
                "--logger=zap",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._etcd_call("/health") is not None, "etcd", self.folder / "etcd.log")

    def _start_apiserver(self) -> None:
        files = self._files
        log = (self.folder / "kube-apiserver.log").open("ab")
        self._server = subprocess.Popen(
            [
                str(self.apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                "--insecure-port=0",
                f"--cert-dir={self.folder / 'certs'}",
                f"--tls-cert-file={files['cert']}",
                f"--tls-private-key-file={files['key']}",
                f"--token-auth-file={self.folder / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={files['sa']}",
                f"--service-account-signing-key-file={files['sa']}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                # Addresses it hands out to Services; nothing is ever sent to them.
                "--service-cluster-ip-range=10.96.0.0/24",
                f"--audit-policy-file={self.folder / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--profiling=false",
                "--logtostderr=true",
                "--v=1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(self._ready, "kube-apiserver", self.folder / "kube-apiserver.log")

    def restart_apiserver(self, while_down: Callable[[], None] | None = None) -> None:
        """Kill kube-apiserver, as a failed control-plane node goes (its clients' connections
        and watches drop at once; a SIGTERM would drain open watches for a minute), run
        ``while_down``, and start it again on the same port and etcd."""
        assert self._server is not None
        self._server.kill()
        self._server.wait(timeout=30)
        self._server = None
        if while_down is not None:
            while_down()
        self._start_apiserver()

    def _wait(self, ready: Callable[[], bool], what: str, log: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        process = self._server if what == "kube-apiserver" else self._etcd
        while True:
            if process is not None and process.poll() is not None:
                raise ClusterError(f"{what} exited ({process.returncode}):\n{_tail(log)}")
            try:
                if ready():
                    return
            except (OSError, ClusterError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} not ready after {STARTUP_SECONDS} s:\n{_tail(log)}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            self.request("GET", "/readyz")
        except ClusterError:
            return False
        return True

    # -- etcd, below the API server --------------------------------------------------------

    def _etcd_call(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.etcd_port}{path}"
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urllib.request.urlopen(url, data=data, timeout=5) as answer:
                return json.loads(answer.read() or b"null")
        except (OSError, ValueError):
            return None

    def etcd_delete(self, key: str) -> int:
        """Delete one key from etcd directly (its v3 JSON gateway); returns how many went."""
        encoded = base64.b64encode(key.encode()).decode()
        answer = self._etcd_call("/v3/kv/deleterange", {"key": encoded})
        if answer is None:
            raise ClusterError(f"etcd did not delete {key}")
        return int(answer.get("deleted") or 0)

    # -- the API, as the admin -----------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One JSON request (the admin's unless ``token``); non-2xx raises ``ClusterError``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.admin_token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=30) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                document = json.loads(text)
            except ValueError:
                document = text
            message = document.get("message", text) if isinstance(document, dict) else text
            raise ClusterError(
                f"{method} {path}: {err.code} {message}", err.code, document
            ) from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def apply(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``document``, or replace it when it exists (as ``kubectl apply`` ends up)."""
        path = _collection_path(document)
        try:
            created: dict[str, Any] = self.request("POST", path, document)
            return created
        except ClusterError as err:
            if err.status != 409:
                raise
        current = self.request("GET", f"{path}/{document['metadata']['name']}")
        body = json.loads(json.dumps(document))
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        replaced: dict[str, Any] = self.request(
            "PUT", f"{path}/{document['metadata']['name']}", body
        )
        return replaced

    def _wait_established(self, crd: str) -> None:
        def established() -> bool:
            found = self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
            )
            conditions = (found.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        self._wait(established, "kube-apiserver", self.folder / "kube-apiserver.log")

    def grant(
        self, namespace: str | None = None, values: Mapping[str, Any] | None = None
    ) -> ChartNamespace:
        """A new namespace with the chart's ServiceAccounts, Roles and RoleBindings.

        ``values`` go to the chart (``kubeNamespace`` puts the Roles in another namespace,
        which is created too). Also the ``default`` ServiceAccount a controller-manager
        would add to every namespace.
        """
        namespace = namespace or f"t-{uuid.uuid4().hex[:10]}"
        objects = [
            obj for obj in render_chart(values, namespace=namespace) if obj["kind"] in RBAC_KINDS
        ]
        spaces = {namespace, *(obj["metadata"]["namespace"] for obj in objects)}
        for space in sorted(spaces):
            self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": space}})
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": space},
                }
            )
        for obj in objects:
            self.apply(obj)
        accounts = {component(obj): obj for obj in objects if obj["kind"] == "ServiceAccount"}
        roles = {component(obj): obj for obj in objects if obj["kind"] == "Role"}
        identities = {
            service: self.token_for(account["metadata"]["namespace"], account["metadata"]["name"])
            for service, account in accounts.items()
        }
        return ChartNamespace(
            namespace=str(roles["controller"]["metadata"]["namespace"]),
            controller=identities["controller"],
            api=identities["api"],
            roles=roles,
        )

    def token_for(self, namespace: str, account: str) -> Identity:
        """A service-account token from the TokenRequest API, as a projected volume gets."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [SERVICE_ACCOUNT_ISSUER], "expirationSeconds": 3600},
            },
        )
        return Identity(namespace, account, str(answer["status"]["token"]))

    def kubeconfig(self, identity: Identity, path: Path, *, namespace: str | None = None) -> Path:
        """A kubeconfig for ``identity``, as ``kubectl config`` would write it."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "tier",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": identity.name, "user": {"token": identity.token}}],
            "contexts": [
                {
                    "name": "tier",
                    "context": {
                        "cluster": "tier",
                        "user": identity.name,
                        "namespace": namespace or identity.namespace,
                    },
                }
            ],
            "current-context": "tier",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # -- the audit log -------------------------------------------------------------------

    def audit_mark(self) -> int:
        """A point in the audit log; ``audit_since`` reads what came after it."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audit_since(self, mark: int = 0) -> list[AuditEvent]:
        """The answered requests logged after ``mark``, one per request."""
        events: dict[str, AuditEvent] = {}
        with self.audit_log.open("rb") as log:
            log.seek(mark)
            for line in log:
                if not line.strip():
                    continue
                event = json.loads(line)
                # A watch is logged when it starts and when it ends: keep one of each.
                events[event["auditID"]] = AuditEvent.from_json(event)
        return list(events.values())


async def bind_pod(kube: Kube, name: str, node: str = "node-1") -> None:
    """What the scheduler does: bind the pod to a node, so that deleting it is graceful
    (the pod stays, with a deletionTimestamp, until its kubelet has stopped it)."""
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    await kube.request("POST", PODS.path(kube.namespace, name, "binding"), body=body)


async def finish_pod_deletion(kube: Kube, name: str) -> None:
    """What the kubelet does once a deleted pod's containers have stopped: remove it."""
    await kube.delete(PODS, name, grace_period_seconds=0)


def _collection_path(document: Mapping[str, Any]) -> str:
    api_version = str(document["apiVersion"])
    kind = str(document["kind"])
    plural = _PLURALS[kind]
    root = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    namespace = (document.get("metadata") or {}).get("namespace")
    if namespace and kind not in _CLUSTER_SCOPED:
        return f"{root}/namespaces/{namespace}/{plural}"
    return f"{root}/{plural}"


_PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "CustomResourceDefinition": "customresourcedefinitions",
}
_CLUSTER_SCOPED = frozenset({"Namespace", "CustomResourceDefinition"})


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
