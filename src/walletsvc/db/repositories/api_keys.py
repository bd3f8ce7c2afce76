"""API keys, stored as a SHA-256 digest of the secret: the key itself is shown once and never stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.access import ApiKeyRecord, Scope
from walletsvc.domain.errors import NotFound


def _record(m: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=m["id"],
        tenant_id=m["tenant_id"],
        name=m["name"],
        secret_hash=m["secret_hash"],
        scopes=frozenset(Scope(s) for s in m["scopes"]),
        created_by=m["created_by"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        key_id: str,
        tenant_id: str | None,
        name: str,
        secret_hash: bytes,
        scopes: frozenset[Scope],
        created_by: str,
    ) -> ApiKeyRecord:
        row = (
            await self.session.execute(
                insert(t.api_keys)
                .values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    secret_hash=secret_hash,
                    scopes=sorted(s.value for s in scopes),
                    created_by=created_by,
                )
                .returning(*t.api_keys.c)
            )
        ).one()
        return _record(row._mapping)

    async def find(self, key_id: str) -> ApiKeyRecord | None:
        row = (await self.session.execute(select(t.api_keys).where(t.api_keys.c.id == key_id))).one_or_none()
        return None if row is None else _record(row._mapping)

    async def list(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        query = select(t.api_keys).order_by(t.api_keys.c.created_at.desc(), t.api_keys.c.id)
        if tenant_id is not None:
            query = query.where(t.api_keys.c.tenant_id == tenant_id)
        return [_record(r._mapping) for r in (await self.session.execute(query)).all()]

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        row = (
            await self.session.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id)
                .values(revoked_at=func.coalesce(t.api_keys.c.revoked_at, func.now()))
                .returning(*t.api_keys.c)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("api key", key_id)
        return _record(row._mapping)
