"""Reconcile's part for Razorpay mandates: registrations still pending because the authorization payment's
webhook and `token.confirmed` were lost (or came in the wrong order) are finished by asking Razorpay.

For each pending mandate, with no transaction open: the token, if walletsvc does not know it yet, from the
authorization order's payments (`GET /v1/orders/{id}/payments`, then `GET /v1/payments/{id}`); then the
token itself (`GET /v1/customers/{customer}/tokens/{token}`), whose state is recorded as `token.confirmed`
or `token.rejected` would have been. A registration whose order nobody paid for
AUTHORIZATION_EXPIRES_AFTER is marked `expired`, and the top-up of its authorization payment `failed` in the
same transaction (a payment of that order made later still credits it, as a late Razorpay capture does). The
money of the authorization payment is its top-up's, settled by reconcile's top-up pass like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.razorpay_mandates import RazorpayMandateRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import AutoTopupPolicy, SavedPaymentMethod
from walletsvc.domain.errors import InvalidPayment, NotFound, WalletError
from walletsvc.domain.mandates import MandateStatus, authorization_abandoned
from walletsvc.domain.topups import TopupStatus
from walletsvc.providers.razorpay_gateway import RazorpayGateway
from walletsvc.providers.razorpay_mandates import authorization_payment, fetch_token, token_details
from walletsvc.services.razorpay_mandates import record_token
from walletsvc.services.topups import fail_topup

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MandateReport:
    checked: int = 0
    updated: int = 0  # confirmed, rejected, ... or expired
    topups_failed: int = 0  # authorization top-ups of expired registrations
    errors: list[str] = field(default_factory=list)


async def reconcile_mandates(
    db: Database, gateway: RazorpayGateway, *, older_than: timedelta, policy: AutoTopupPolicy
) -> MandateReport:
    """Each mandate in its own short transaction, after Razorpay was asked with none open."""
    report = MandateReport()
    async with db.sessionmaker() as session:
        pending = await RazorpayMandateRepository(session).pending_older_than(older_than)
    for mandate in pending:
        report.checked += 1
        try:
            if await _finish(db, gateway, mandate, policy, report):
                report.updated += 1
        except WalletError as exc:
            report.errors.append(f"mandate {mandate.id}: {exc.detail}")
    return report


async def _finish(
    db: Database,
    gateway: RazorpayGateway,
    mandate: SavedPaymentMethod,
    policy: AutoTopupPolicy,
    report: MandateReport,
) -> bool:
    token_id, customer_id = mandate.token_id, mandate.customer_id
    if token_id is None:
        order_id = await _auth_order(db, mandate)
        found = await authorization_payment(gateway, order_id) if order_id else None
        if found is None or found.token_id is None:
            in_progress = found is not None and found.in_progress
            now = datetime.now(UTC)
            if not authorization_abandoned(
                created_at=mandate.created_at, now=now, payment_in_progress=in_progress
            ):
                return False
            return await _expire(db, mandate, policy, report)
        token_id, customer_id = found.token_id, found.customer_id or customer_id
    if customer_id is None:
        return False
    try:
        token = await fetch_token(gateway, customer_id=customer_id, token_id=token_id)
    except (NotFound, InvalidPayment) as exc:
        # Razorpay answers an id it does not know with a 400: the token is gone, the mandate unusable.
        log.warning("a mandate's token is unknown at Razorpay", extra={"tenant_id": mandate.tenant_id})
        token = {
            "id": token_id,
            "method": mandate.kind,
            "recurring_details": {"status": "cancelled", "failure_reason": exc.detail},
        }
    details = token_details(token)
    async with unit_of_work(db) as session:
        mandates = RazorpayMandateRepository(session)
        current = await mandates.get(mandate.tenant_id, mandate.id, for_update=True)
        if current is None or current.status != MandateStatus.PENDING.value:
            return False  # a webhook told first
        if current.token_id is None:
            current = await mandates.update(
                mandate.tenant_id, mandate.id, token_id=token_id, customer_id=customer_id
            )
        if details.status in (None, MandateStatus.PENDING):
            return False  # the bank is still on it (UPI AutoPay, e-mandate): asked again next time
        await record_token(session, current, details, source="reconcile")
    return True


async def _auth_order(db: Database, mandate: SavedPaymentMethod) -> str | None:
    async with db.sessionmaker() as session:
        return await RazorpayMandateRepository(session).auth_order_of(mandate.tenant_id, mandate.id)


async def _expire(
    db: Database, mandate: SavedPaymentMethod, policy: AutoTopupPolicy, report: MandateReport
) -> bool:
    """Mark the registration expired and fail its authorization top-up, in one transaction."""
    tenant_id = mandate.tenant_id
    async with unit_of_work(db) as session:
        mandates = RazorpayMandateRepository(session)
        current = await mandates.get(tenant_id, mandate.id, for_update=True)
        if current is None or current.status != MandateStatus.PENDING.value or current.token_id:
            return False
        await mandates.update(
            tenant_id,
            mandate.id,
            status=MandateStatus.EXPIRED,
            status_reason="the authorization payment was never made: register the mandate again",
        )
        topup_id = await mandates.auth_topup_of(tenant_id, mandate.id)
        topup = await TopupRepository(session).get(tenant_id, topup_id) if topup_id else None
        if topup is not None and topup.status is TopupStatus.PENDING:
            await fail_topup(
                session,
                tenant_id,
                topup.id,
                reason="the mandate's authorization payment was never made",
                source="reconcile",
                policy=policy,
            )
            report.topups_failed += 1
    log.info("a mandate registration expired unpaid", extra={"tenant_id": tenant_id})
    return True
