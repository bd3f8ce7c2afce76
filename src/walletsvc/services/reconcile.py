"""`walletsvc reconcile`: ask the providers about top-ups and refunds that never heard back, and settle
them. Each item is its own transaction, so one failure does not hold up the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.domain.errors import WalletError
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import TopupStatus
from walletsvc.services.gateways import Gateways
from walletsvc.services.mandate_reconcile import reconcile_mandates
from walletsvc.services.refunds import resume_refund
from walletsvc.services.topups import fail_topup, settle_status

if TYPE_CHECKING:
    from walletsvc.services.auto_topup import AutoTopupRunLimits

log = logging.getLogger(__name__)

# A top-up whose checkout was never created (the provider was down) is given up after this long.
ABANDON_AFTER = timedelta(hours=24)
RAZORPAY_RETRY_WINDOW = timedelta(hours=24)


@dataclass(slots=True)
class ReconcileReport:
    checked: int = 0
    credited: int = 0
    failed: int = 0
    still_pending: int = 0
    refunds_settled: int = 0
    auto_topups_resumed: int = 0
    mandates_updated: int = 0  # Razorpay mandate registrations finished (confirmed, rejected, expired)
    errors: list[str] = field(default_factory=list)


async def reconcile(
    db: Database,
    gateways: Gateways,
    *,
    older_than: timedelta,
    policy: AutoTopupPolicy,
    settings: AutoTopupRunLimits | None = None,
) -> ReconcileReport:
    """`policy`: what a failure found here does to an auto top-up behind it. With `settings` (what
    auto top-up reads), auto top-ups a job gave up on are resumed too (the worker and `walletsvc reconcile`
    pass them)."""
    report = ReconcileReport()
    if settings is not None:
        # Auto top-ups whose job gave up (the provider was down): run again, under the same Stripe key.
        # Their top-ups are then settled below like any other.
        from walletsvc.services.auto_topup import resume_stale

        report.auto_topups_resumed = await resume_stale(
            db, gateways, settings, policy=policy, older_than_seconds=int(older_than.total_seconds())
        )
    async with db.sessionmaker() as session:
        topups = TopupRepository(session)
        pending = await topups.pending_older_than(older_than)
        # A customer may pay a Razorpay order again after a failed attempt; if that capture's webhook and
        # verify call were both lost, only this look finds it.
        pending += [  # an expired or cancelled payment link (auto top-up) cannot be paid again
            topup
            for topup in await topups.recently_failed(ProviderName.RAZORPAY, RAZORPAY_RETRY_WINDOW)
            if not (topup.provider_checkout_id or "").startswith("plink_")
        ]
        refunds = await RefundRepository(session).pending_older_than(older_than)
    for topup in pending:
        report.checked += 1
        try:
            gateway = gateways.get(topup.provider)
            if topup.provider_checkout_id is None:
                if topup.age_at_least(ABANDON_AFTER):
                    async with unit_of_work(db) as session:
                        await fail_topup(
                            session,
                            topup.tenant_id,
                            topup.id,
                            reason="the checkout was never created",
                            source="reconcile",
                            policy=policy,
                        )
                    report.failed += 1
                else:
                    report.still_pending += 1
                continue
            # Ask first, with no lock held; then settle in a short transaction.
            status = await gateway.payment_status(topup.provider_checkout_id, topup.checkout_kind)
            async with unit_of_work(db) as session:
                settled = await settle_status(
                    session, topup.tenant_id, topup.id, status, source="reconcile", policy=policy
                )
            if settled.status is TopupStatus.SUCCEEDED:
                report.credited += 1
            elif settled.status is TopupStatus.FAILED and topup.status is not TopupStatus.FAILED:
                report.failed += 1
            elif settled.status is TopupStatus.PENDING:
                report.still_pending += 1
        except WalletError as exc:
            report.errors.append(f"top-up {topup.id}: {exc.detail}")
    for refund in refunds:
        try:
            # The provider is asked with no lock held; its answer is applied under the top-up's lock.
            async with unit_of_work(db) as session:
                await resume_refund(session, gateways, refund, source="reconcile")
            report.refunds_settled += 1
        except WalletError as exc:
            report.errors.append(f"refund {refund.id}: {exc.detail}")
    if gateways.razorpay is not None:
        # Mandates whose authorization payment's webhook and token.confirmed were both lost.
        mandates = await reconcile_mandates(db, gateways.razorpay, older_than=older_than, policy=policy)
        report.mandates_updated = mandates.updated
        report.failed += mandates.topups_failed
        report.errors += mandates.errors
    log.info("reconcile finished", extra={"checked": report.checked, "credited": report.credited})
    return report
