"""Who is calling, and what that lets them see (ARCHITECTURE section 5, "Access").

A caller sees and downloads only jobs of groups it belongs to; admins see everything and
may run the cleanup. Every authorization decision in the api goes through ``Identity``.
"""

from __future__ import annotations

from dataclasses import dataclass

from artifacts_api.errors import Forbidden

__all__ = ["Identity", "dev"]


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    groups: frozenset[str]
    admin: bool = False
    # What PrimeHub's `me` shows besides; from the token's standard OIDC claims, when it has them.
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    def may_access(self, group_name: str) -> bool:
        return self.admin or group_name in self.groups

    def require_access(self, group_name: str, what: str) -> None:
        if not self.may_access(group_name):
            raise Forbidden(
                f"{what} belongs to group {group_name!r}, which you are not a member of"
            )

    def require_admin(self, action: str) -> None:
        if not self.admin:
            raise Forbidden(f"only admins may {action}")


def dev(groups: frozenset[str]) -> Identity:
    """``API_AUTH_MODE=none``: the local dev stack's single user, an admin in ``API_DEV_GROUPS``."""
    return Identity(name="dev", groups=groups, admin=True)
