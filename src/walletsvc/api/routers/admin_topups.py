"""Admin: all top-ups, refunds to the provider, and bonus rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep
from walletsvc.api.intents import IntentDep
from walletsvc.api.routers.topups import GatewaysDep, TopupIdPath
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.topups import (
    BonusRuleCreate,
    BonusRuleOut,
    BonusRulePatch,
    RefundCreate,
    RefundOut,
    TopupDetail,
    percent_of,
)
from walletsvc.db.repositories.bonus_rules import BonusRuleRepository
from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.errors import NotFound
from walletsvc.services.bonus_rules import create_bonus_rule, update_bonus_rule
from walletsvc.services.refunds import refund_topup

router = APIRouter(prefix="/v1/admin", tags=["admin: top-ups"], route_class=TransactionalRoute)


@router.get(
    "/topups/{topup_id}",
    summary="Any tenant's top-up, with history and refunds",
    responses=problem_responses(403, 404),
)
async def get_any_topup(topup_id: TopupIdPath, session: SessionDep, admin: AdminDep) -> TopupDetail:
    topups = TopupRepository(session)
    tenant_id = await topups.locate_any(topup_id)
    if tenant_id is None:
        raise NotFound("top-up", topup_id)
    return TopupDetail.build(
        await topups.get(tenant_id, topup_id),
        await topups.events(tenant_id, topup_id),
        await RefundRepository(session).for_topup(tenant_id, topup_id),
    )


@router.post(
    "/topups/{topup_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    summary="Refund a top-up, whole or in part, to where it came from",
    description="The refund is recorded, and the money it takes held on the wallet, before the provider is "
    "asked (with an idempotency key derived from the refund's id); the wallet is debited once, whichever of "
    "the provider's answer, its refund webhook and reconcile comes first. Refunding more than the wallet "
    "still holds answers 402 unless `force` is set. Retried with the same `Idempotency-Key` after a 503 or a "
    "lost answer, it resumes the same refund: the provider never pays out twice.",
    responses=problem_responses(400, 402, 403, 404, 409, 503),
    dependencies=[Idempotent],
)
async def create_refund(
    topup_id: TopupIdPath,
    body: RefundCreate,
    session: SessionDep,
    gateways: GatewaysDep,
    admin: AdminDep,
    intent: IntentDep,
) -> RefundOut:
    refund = await refund_topup(
        session,
        gateways,
        topup_id,
        amount=body.amount,
        reason=body.reason,
        force=body.force,
        actor=admin.actor,
        intent=intent,
    )
    return RefundOut.of(refund)


@router.post(
    "/bonus-rules",
    status_code=status.HTTP_201_CREATED,
    summary="Create a top-up bonus rule",
    responses=problem_responses(403),
    dependencies=[Idempotent],
)
async def create_rule(body: BonusRuleCreate, session: SessionDep, admin: AdminDep) -> BonusRuleOut:
    rule, description = await create_bonus_rule(
        session,
        currency=body.currency,
        min_amount=body.min_amount,
        percent=percent_of(body.percent),
        fixed_amount=body.fixed_amount,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        active=body.active,
        description=body.description,
        actor=admin.actor,
    )
    return BonusRuleOut.of(rule, description)


@router.get("/bonus-rules", summary="List bonus rules", responses=problem_responses(403))
async def list_rules(
    session: SessionDep, admin: AdminDep, currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None
) -> list[BonusRuleOut]:
    return [
        BonusRuleOut.of(rule, text)
        for rule, text in await BonusRuleRepository(session).list_rules(currency=currency)
    ]


@router.patch(
    "/bonus-rules/{rule_id}",
    summary="Change or switch off a bonus rule",
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def patch_rule(
    rule_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,40}$")],
    body: Annotated[BonusRulePatch, Body(default_factory=BonusRulePatch)],
    session: SessionDep,
    admin: AdminDep,
) -> BonusRuleOut:
    changes: dict[str, object] = body.model_dump(exclude_unset=True, exclude={"description"})
    if "percent" in changes:
        changes["percent"] = percent_of(body.percent)
    rule, description = await update_bonus_rule(
        session, rule_id, changes=changes, description=body.description
    )
    return BonusRuleOut.of(rule, description)
