from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.domain.tenants import Tenant
from walletsvc.services.tenants import open_tenant


@pytest.fixture
async def tenant(db_session: AsyncSession) -> Tenant:
    return await open_tenant(
        db_session, tenant_id=f"it-{uuid.uuid4().hex[:10]}", name="Integration", country="IND", currency="INR"
    )
