"""Who may see what: bearer tokens (HS256, OIDC with a served JWKS), groups, admins, none mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.api import JWT_SECRET, Api, add_job, api_settings, put_files, serve, token

from artifacts_api.errors import Unauthenticated
from artifacts_api.jwks import JwksCache
from artifacts_api.settings import ApiSettings
from artifacts_shared.jobstore import LocalJobStore
from artifacts_shared.s3 import S3Client
from artifacts_shared.settings import RedisSettings, S3Settings

JOB = "job-202101010000-aaaaaa"
EVERYTHING = """query ($id: ID!) { phJob(where: {id: $id}) { id artifact {
  prefix zipUrl items { name downloadUrl } item(name: "test.txt") { downloadUrl } } } }"""
ME = "query { phJobs { totalCount nodes { id userName } } }"


async def test_another_groups_user_is_forbidden_the_job_its_artifacts_links_and_zip(
    api: Api, s3: S3Client, store: LocalJobStore
) -> None:
    add_job(store, JOB, group="team-a")
    await put_files(s3, api.settings.phfs_bucket, "team-a", JOB, {"test.txt": b"hello\n"})
    bob = token("bob", groups=["team-b"])

    mine = await api.graphql(EVERYTHING, {"id": JOB})
    theirs = await api.graphql(EVERYTHING, {"id": JOB}, bearer=bob)
    listed = await api.graphql(ME, bearer=bob)
    zip_for_bob = await api.get(f"/jobs/{JOB}/artifacts.zip", bearer=bob)
    zip_for_alice = await api.get(f"/jobs/{JOB}/artifacts.zip")

    assert mine.errors == [] and mine.data["phJob"]["artifact"]["items"][0]["downloadUrl"]
    assert theirs.codes == ["FORBIDDEN"]
    assert theirs.data == {"phJob": None}
    assert "X-Amz-Signature" not in str(theirs.body) and "artifacts.zip" not in str(theirs.body)
    assert listed.data["phJobs"] == {"totalCount": 0, "nodes": []}
    assert zip_for_bob.status == 403
    assert (await zip_for_bob.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert zip_for_alice.status == 200 and zip_for_alice.content_type == "application/zip"


@pytest.mark.parametrize(
    ("bearer", "reason"),
    [
        (token(expires_in=-3600), "expired"),
        (token(secret="another-secret-that-is-also-long-enough!!"), "signature"),
        (token() + "x", "signature"),
        (
            jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"),
            "algorithm",
        ),
        (jwt.encode({"sub": "x", "groups": ["team-a"]}, JWT_SECRET, algorithm="HS256"), "claims"),
        ("not-a-jwt", None),
    ],
    ids=["expired", "other-secret", "tampered", "alg-none", "no-exp", "garbage"],
)
async def test_a_bad_token_is_unauthenticated_everywhere(
    api: Api, store: LocalJobStore, bearer: str, reason: str | None
) -> None:
    add_job(store, JOB)

    result = await api.graphql(ME, bearer=bearer)
    zipped = await api.get(f"/jobs/{JOB}/artifacts.zip", bearer=bearer)

    assert result.status == 401 and result.codes == ["UNAUTHENTICATED"]
    assert result.errors[0]["extensions"].get("reason") == reason
    assert "data" not in result.body
    assert zipped.status == 401
    assert (await zipped.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_request_without_a_token_is_unauthenticated(api: Api) -> None:
    result = await api.graphql(ME, bearer=None)

    assert result.status == 401 and result.codes == ["UNAUTHENTICATED"]
    assert "Bearer" in result.errors[0]["message"]


@dataclass
class Provider:
    """A small identity provider: discovery document and JWKS over real HTTP."""

    issuer: str = ""
    keys: dict[str, Any] = field(default_factory=dict)
    jwks_requests: int = 0
    up: bool = True

    def add_key(self, kid: str, private: Any) -> None:
        self.keys[kid] = private

    def sign(
        self, kid: str, *, audience: str = "artifacts", issuer: str | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "sub": "u-1",
            "preferred_username": "alice",
            "groups": ["team-a"],
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        private = self.keys[kid]
        algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(payload, private, algorithm=algorithm, headers={"kid": kid})

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.keys.items():
            if isinstance(private, ec.EllipticCurvePrivateKey):
                jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
            else:
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/certs"})

        async def certs(request: web.Request) -> web.Response:
            self.jwks_requests += 1
            if not self.up:
                return web.Response(status=503)
            return web.json_response(self.jwks())

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/certs", certs)
        return app


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    provider = Provider()
    provider.add_key("k1", rsa_key())
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    provider.issuer = str(server.make_url("")).rstrip("/")
    try:
        yield provider
    finally:
        await server.close()


@pytest.fixture
async def oidc_api(
    provider: Provider, s3_settings: S3Settings, redis_settings: RedisSettings, store: LocalJobStore
) -> AsyncIterator[Api]:
    settings = api_settings(
        s3_settings,
        redis_settings.redis_url,
        store.root,
        api_auth_mode="oidc",
        api_jwt_secret=None,
        oidc_issuer=provider.issuer,
        oidc_audience="artifacts",
    )
    async with serve(settings) as running:
        yield running


async def test_oidc_tokens_are_checked_for_signature_issuer_audience_and_expiry(
    oidc_api: Api, provider: Provider, store: LocalJobStore
) -> None:
    add_job(store, JOB, group="team-a")
    provider.add_key("ec", ec.generate_private_key(ec.SECP256R1()))
    stranger = Provider(issuer=provider.issuer)
    stranger.add_key("k1", rsa_key())  # same key id, another key: a forged signature

    good = await oidc_api.graphql(ME, bearer=provider.sign("k1"))
    good_ec = await oidc_api.graphql(ME, bearer=provider.sign("ec"))
    refused = {
        "audience": await oidc_api.graphql(ME, bearer=provider.sign("k1", audience="other-api")),
        "issuer": await oidc_api.graphql(
            ME, bearer=provider.sign("k1", issuer="https://evil.test")
        ),
        "expired": await oidc_api.graphql(
            ME, bearer=provider.sign("k1", exp=int(time.time()) - 600)
        ),
        "signature": await oidc_api.graphql(ME, bearer=stranger.sign("k1")),
        "hs256": await oidc_api.graphql(ME, bearer=token()),
    }

    assert good.errors == [] and good.data["phJobs"]["totalCount"] == 1
    assert good_ec.errors == [] and good_ec.data["phJobs"]["totalCount"] == 1
    for reason, result in refused.items():
        assert result.status == 401 and result.codes == ["UNAUTHENTICATED"], reason
    assert refused["audience"].errors[0]["extensions"]["reason"] == "audience"
    assert refused["issuer"].errors[0]["extensions"]["reason"] == "issuer"
    assert refused["expired"].errors[0]["extensions"]["reason"] == "expired"
    assert refused["signature"].errors[0]["extensions"]["reason"] == "signature"
    # Discovered once, then cached for every request.
    assert provider.jwks_requests == 1


async def test_jwks_is_fetched_again_once_for_a_key_id_it_does_not_list(provider: Provider) -> None:
    async with aiohttp.ClientSession() as session:
        cache = JwksCache(
            session,
            issuer=provider.issuer,
            jwks_url=f"{provider.issuer}/certs",
            ttl_seconds=300,
            min_refresh_seconds=0,
        )
        first = await cache.key_for("k1")
        assert first.key_id == "k1"
        provider.add_key("k2", rsa_key())  # the provider rotates its keys
        rotated = await cache.key_for("k2")
        with pytest.raises(Unauthenticated):
            await cache.key_for("unknown")
        assert (await cache.key_for("k1")).key_id == "k1"  # no fetch: k1 is listed

    assert rotated.key_id == "k2"
    assert provider.jwks_requests == 3  # first fetch, rotation, one try for the unknown id


async def test_an_unreachable_identity_provider_gives_unavailable(
    oidc_api: Api, provider: Provider
) -> None:
    provider.up = False

    result = await oidc_api.graphql(ME, bearer=provider.sign("k1"))

    assert result.status == 503 and result.codes == ["UNAVAILABLE"]


async def test_groups_and_admin_come_from_the_configured_claims(
    settings: ApiSettings, store: LocalJobStore
) -> None:
    add_job(store, JOB, group="ML_Team")
    add_job(store, "job-202101010000-bbbbbb", group="other")
    keycloak = settings.model_copy(
        update={
            "api_groups_claim": "groups",
            "api_roles_claim": "realm_access.roles",
            "api_admin_role": "artifacts-admin",
            "api_username_claim": "email",
        }
    )
    member = token(groups=["/ML_Team"], email="alice@example.test")
    admin = token(groups=[], realm_access={"roles": ["artifacts-admin"]}, email="root@example.test")
    not_admin = token(groups=[], roles=["artifacts-admin"], email="eve@example.test")

    async with serve(keycloak) as api:
        as_member = await api.graphql(ME, bearer=member)
        as_admin = await api.graphql(ME, bearer=admin)
        as_other = await api.graphql(ME, bearer=not_admin)
        created = await api.graphql(
            'mutation { createPhJob(data: {displayName: "x", groupName: "ML_Team", '
            'command: "true"}) { userName } }',
            bearer=member,
        )

    assert [n["id"] for n in as_member.data["phJobs"]["nodes"]] == [JOB]
    assert as_admin.data["phJobs"]["totalCount"] == 2
    assert as_other.data["phJobs"]["totalCount"] == 0
    assert created.data == {"createPhJob": {"userName": "alice@example.test"}}


async def test_none_mode_makes_every_caller_the_admin_dev(
    settings: ApiSettings, store: LocalJobStore
) -> None:
    add_job(store, JOB, group="anyone")
    dev = settings.model_copy(update={"api_auth_mode": "none", "api_jwt_secret": None})

    async with serve(dev) as api:
        listed = await api.graphql(ME, bearer=None)
        created = await api.graphql(
            'mutation { createPhJob(data: {displayName: "x", groupName: "g", command: "true", '
            "artifactRetentionSeconds: 0}) { userName } }",
            bearer=None,
        )

    assert listed.data["phJobs"]["totalCount"] == 1
    assert created.data == {"createPhJob": {"userName": "dev"}}


def run_api(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, "-m", "artifacts_api"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "api.example.test"])
def test_none_mode_refuses_to_listen_off_loopback_with_one_line(host: str) -> None:
    result = run_api(API_AUTH_MODE="none", API_HOST=host, API_PORT="1")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("api: API_AUTH_MODE='none'")
    assert f"API_HOST={host!r}" in lines[0]


def test_auth_settings_that_cannot_work_stop_the_api_with_one_line() -> None:
    oidc = run_api(API_AUTH_MODE="oidc")
    hs256 = run_api(API_AUTH_MODE="hs256", API_JWT_SECRET="short")

    assert oidc.returncode == 1 and hs256.returncode == 1
    assert oidc.stderr.strip() == (
        "api: API_AUTH_MODE='oidc' needs OIDC_ISSUER and OIDC_AUDIENCE: "
        "expected the token issuer URL and the audience the api accepts"
    )
    assert "API_JWT_SECRET" in hs256.stderr and "short" not in hs256.stderr
    assert len(hs256.stderr.strip().splitlines()) == 1
