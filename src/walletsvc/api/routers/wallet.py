"""The caller's own wallet."""

from __future__ import annotations

from fastapi import APIRouter

from walletsvc.api.deps import Idempotent, SessionDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.wallets import LowBalanceThresholdIn, WalletOut
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.services.low_balance import set_own_threshold

router = APIRouter(prefix="/v1/wallet", tags=["wallet"], route_class=TransactionalRoute)


@router.get(
    "", summary="Balance, reserved, available, threshold, flags", responses=problem_responses(403, 404)
)
async def get_wallet(session: SessionDep, caller: WalletReaderDep) -> WalletOut:
    tenant_id = caller.own_tenant()
    wallets = WalletRepository(session)
    return WalletOut.of(await wallets.get(tenant_id), await wallets.auto_topup(tenant_id))


@router.put(
    "/low-balance-threshold",
    summary="Set the wallet's low-balance threshold (owners)",
    description="Below this available balance a `wallet.low_balance` event (and e-mail) goes out, at most "
    "once a day; 0 turns alerts off. The new threshold is applied at once: set above the available "
    "balance it announces the wallet low, set below it ends the low spell.",
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def put_low_balance_threshold(
    body: LowBalanceThresholdIn, session: SessionDep, caller: WalletWriterDep
) -> WalletOut:
    tenant_id = caller.own_tenant()
    await set_own_threshold(session, tenant_id, body.amount, currency=body.currency)
    wallets = WalletRepository(session)
    return WalletOut.of(await wallets.get(tenant_id), await wallets.auto_topup(tenant_id))
