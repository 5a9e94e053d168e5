"""The chart's RBAC grants exactly what the services need, in their namespace, and no more.

``GRANTS`` (``support/deploy.py``) is the list of the calls the services make (the
controller reads PhJobs and patches only their status; it gets, creates and patches its
ConfigMap and Lease by name). A rule with another verb, another resource or a wildcard
fails the test; so does a missing grant (a controller that cannot create pods is as broken
as one that can delete Secrets). The checker is fed bad Roles too, so it is known to bite.
tests/cluster/test_rbac.py checks the same table against a real API server: every request
the services make is allowed, and every request outside it is forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from support.deploy import GRANTS, NAMESPACE, GrantTable, component, of_kind, render_chart

from artifacts_shared.phjob import API_GROUP, PLURAL


def rbac_violations(role: Mapping[str, Any], allowed: GrantTable) -> list[str]:
    """What ``role`` grants beyond ``allowed``, one line each (empty when it is within)."""
    problems: list[str] = []
    for rule in role.get("rules", []):
        if rule.get("nonResourceURLs"):
            problems.append(f"non-resource URLs {rule['nonResourceURLs']}")
        verbs = set(rule.get("verbs", []))
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                if "*" in group or "*" in resource or "*" in verbs:
                    problems.append(f"wildcard in {group!r} {resource!r} {sorted(verbs)}")
                    continue
                extra = verbs - allowed.get((group, resource), frozenset())
                if extra:
                    problems.append(f"{group or 'core'}/{resource}: {sorted(extra)}")
    return problems


def granted(roles: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


@pytest.mark.parametrize(
    "values",
    [{}, {"artifact": {"delivery": "s3"}}, {"kubeNamespace": "jobs"}],
    ids=["default", "s3", "other-namespace"],
)
def test_roles_grant_exactly_the_listed_verbs(values: dict[str, Any]) -> None:
    objects = render_chart(values)
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []
    roles = of_kind(objects, "Role")
    assert sorted(component(role) for role in roles) == ["api", "controller"]
    for role in roles:
        service = component(role)
        assert rbac_violations(role, GRANTS[service]) == [], service
        assert granted([role]) == {k: set(v) for k, v in GRANTS[service].items()}, service
        assert role["metadata"]["namespace"] == values.get("kubeNamespace", NAMESPACE)


def test_each_role_is_bound_to_its_own_service_account_only() -> None:
    objects = render_chart({"kubeNamespace": "jobs"})
    accounts = {component(sa): sa["metadata"]["name"] for sa in of_kind(objects, "ServiceAccount")}
    roles = {component(role): role["metadata"]["name"] for role in of_kind(objects, "Role")}
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(component(b) for b in bindings) == ["api", "controller"]
    for binding in bindings:
        service = component(binding)
        assert binding["metadata"]["namespace"] == "jobs"
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[service],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": accounts[service], "namespace": NAMESPACE}
        ]


BAD_RULES: dict[str, dict[str, list[str]]] = {
    "wildcard verb": {"apiGroups": [API_GROUP], "resources": [PLURAL], "verbs": ["*"]},
    "wildcard resource": {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
    "wildcard group": {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
    "extra verb": {"apiGroups": [API_GROUP], "resources": [PLURAL], "verbs": ["delete"]},
    "secrets": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    "pods/exec": {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    "non-resource": {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
}


@pytest.mark.parametrize("rule", BAD_RULES.values(), ids=list(BAD_RULES))
def test_the_checker_rejects_a_role_granting_more(rule: dict[str, list[str]]) -> None:
    for service, allowed in GRANTS.items():
        role = {"kind": "Role", "rules": [rule]}
        assert rbac_violations(role, allowed) != [], service


def test_the_checker_accepts_the_listed_grants() -> None:
    for allowed in GRANTS.values():
        rules = [
            {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in allowed.items()
        ]
        assert rbac_violations({"kind": "Role", "rules": rules}, allowed) == []
