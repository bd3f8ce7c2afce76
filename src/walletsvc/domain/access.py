"""Who may do what. A principal is whoever a request authenticated as: a portal user or an API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from walletsvc.domain.errors import Forbidden, InvalidRequest


class Role(StrEnum):
    MEMBER = "member"
    OWNER = "owner"
    SUPER_ADMIN = "super_admin"


class Scope(StrEnum):
    """What an API key may do, and what a role grants."""

    WALLET_READ = "wallet:read"
    WALLET_WRITE = "wallet:write"
    USAGE_WRITE = "usage:write"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.MEMBER: frozenset({Scope.WALLET_READ}),
    Role.OWNER: frozenset({Scope.WALLET_READ, Scope.WALLET_WRITE}),
    Role.SUPER_ADMIN: frozenset(Scope),
}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "user" or "api_key"
    subject: str  # the JWT's sub, or the API key's id
    tenant_id: str | None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    role: Role | None = None

    @property
    def actor(self) -> str:
        """How the principal is named on ledger rows and audit fields."""
        return f"{self.kind}:{self.subject}"

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this needs the {scope.value!r} permission")

    def own_tenant(self) -> str:
        """The tenant a tenant-facing route acts on: always the caller's own."""
        if self.tenant_id is None:
            raise Forbidden("these credentials are not bound to a tenant; use the admin routes")
        return self.tenant_id

    def tenant_for(self, requested: str | None) -> str:
        """The tenant a telephony call names: platform-wide keys must name one, bound keys may only
        name their own."""
        if self.tenant_id is None:
            if requested is None:
                raise InvalidRequest("platform-wide credentials must name tenant_id")
            return requested
        if requested is not None and requested != self.tenant_id:
            raise Forbidden("these credentials may only act on their own tenant")
        return self.tenant_id


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key: its SHA-256 digest, never the key itself (that is shown once)."""

    id: str
    tenant_id: str | None
    name: str
    secret_hash: bytes
    scopes: frozenset[Scope]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


def validate_key_scopes(scopes: frozenset[Scope], tenant_id: str | None) -> None:
    """An API key bound to a tenant can never be an admin key."""
    if not scopes:
        raise InvalidRequest("an API key needs at least one scope")
    if tenant_id is not None and Scope.ADMIN in scopes:
        raise InvalidRequest("the 'admin' scope is only for platform-wide keys (no tenant_id)")
