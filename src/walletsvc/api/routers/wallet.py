"""The caller's own wallet."""

from __future__ import annotations

from fastapi import APIRouter

from walletsvc.api.deps import SessionDep, WalletReaderDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.wallets import WalletOut
from walletsvc.db.repositories.wallets import WalletRepository

router = APIRouter(prefix="/v1/wallet", tags=["wallet"], route_class=TransactionalRoute)


@router.get(
    "", summary="Balance, reserved, available, threshold, flags", responses=problem_responses(403, 404)
)
async def get_wallet(session: SessionDep, caller: WalletReaderDep) -> WalletOut:
    tenant_id = caller.own_tenant()
    wallets = WalletRepository(session)
    return WalletOut.of(await wallets.get(tenant_id), await wallets.auto_topup(tenant_id))
