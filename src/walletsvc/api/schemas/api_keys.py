"""API keys as the API shows them: the key itself only once, at creation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from walletsvc.api.schemas.common import NO_NUL_PATTERN
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.domain.access import ApiKeyRecord, Scope


class ApiKeyCreate(BaseModel):
    scopes: list[Scope] = Field(min_length=1, examples=[["usage:write"]])
    tenant_id: str | None = Field(
        default=None,
        pattern=TENANT_ID_PATTERN,
        description="Bind the key to one tenant; omit for platform-wide",
    )
    name: str = Field(default="", max_length=200, pattern=NO_NUL_PATTERN)


class ApiKeyOut(BaseModel):
    id: str
    tenant_id: str | None
    name: str
    scopes: list[Scope]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, r: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=r.id,
            tenant_id=r.tenant_id,
            name=r.name,
            scopes=sorted(r.scopes),
            created_by=r.created_by,
            created_at=r.created_at,
            revoked_at=r.revoked_at,
        )


KEY_SHOWN_ONCE = (
    "the key is shown only once, in the first answer, and is never stored: an Idempotency-Key replay "
    "cannot show it again; if it was lost, revoke this key and create another"
)


class ApiKeyCreated(ApiKeyOut):
    key: str | None = Field(
        description="The secret key. Shown once: store it now, it cannot be read again. "
        "null in an Idempotency-Key replay of the creation (see `detail`)."
    )
    detail: str | None = Field(default=None, description="Why `key` is null, when it is")

    def without_key(self) -> ApiKeyCreated:
        """What an Idempotency-Key replay answers: the same key record, without the secret."""
        return self.model_copy(update={"key": None, "detail": KEY_SHOWN_ONCE})
