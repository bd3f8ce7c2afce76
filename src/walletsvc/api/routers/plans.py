"""Plans (public list, admin edit), subscriptions, and the default rates per currency."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, SettingsDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.charging import (
    BillingDefaultsIn,
    BillingDefaultsOut,
    PlanCreate,
    PlanOut,
    PlanPatch,
    RatesOut,
    SubscriptionChange,
    SubscriptionOut,
)
from walletsvc.api.schemas.common import MoneyOut, problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.db.repositories.plans import BillingDefaultsRepository, PlanRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.money import check_currency
from walletsvc.domain.rating import Rates, UsageKind
from walletsvc.services.plans import new_plan, subscribe
from walletsvc.services.pricing import default_pricing, pricing_for

router = APIRouter(tags=["plans"], route_class=TransactionalRoute)

PlanIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
CurrencyPath = Annotated[str, Path(pattern=r"^[A-Z]{3}$")]


@router.get(
    "/v1/plans",
    summary="Active plans, for a pricing page (no credentials needed)",
    responses=problem_responses(public=True),
)
async def list_plans(
    session: SessionDep, currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None
) -> list[PlanOut]:
    return [
        PlanOut.of(p) for p in await PlanRepository(session).list_plans(active_only=True, currency=currency)
    ]


@router.post(
    "/v1/admin/plans",
    status_code=status.HTTP_201_CREATED,
    summary="Create a plan",
    tags=["admin: plans"],
    responses=problem_responses(403, 409),
    dependencies=[Idempotent],
)
async def create_plan(body: PlanCreate, session: SessionDep, admin: AdminDep) -> PlanOut:
    check_currency(body.currency)
    plan = new_plan(
        plan_id=body.id,
        name=body.name,
        currency=body.currency,
        monthly_price=body.monthly_price,
        included_minutes=body.included_minutes,
        rates=body.to_rates(body.currency),
        features=tuple(body.features),
        active=body.active,
    )
    return PlanOut.of(await PlanRepository(session).add(plan))


@router.get(
    "/v1/admin/plans",
    summary="Every plan, offered or not",
    tags=["admin: plans"],
    responses=problem_responses(403),
)
async def list_all_plans(session: SessionDep, admin: AdminDep) -> list[PlanOut]:
    return [PlanOut.of(p) for p in await PlanRepository(session).list_plans(active_only=False)]


@router.patch(
    "/v1/admin/plans/{plan_id}",
    summary="Change a plan (its currency is fixed); `active: false` withdraws it from sale",
    tags=["admin: plans"],
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def patch_plan(
    plan_id: PlanIdPath,
    body: Annotated[PlanPatch, Body(default_factory=PlanPatch)],
    session: SessionDep,
    admin: AdminDep,
) -> PlanOut:
    plans = PlanRepository(session)
    plan = await plans.get(plan_id)
    changes = body.model_dump(exclude_unset=True)
    rate_changes: dict[str, object] = {}
    for field in ("billing_increment_seconds", "minimum_billable_seconds"):
        if changes.get(field) is not None:
            rate_changes[field] = changes[field]
    for field in ("per_minute_rate", "connection_fee"):
        if changes.get(field) is not None:
            rate_changes[field] = Decimal(changes[field])
    prices = dict(plan.rates.unit_prices)
    for kind, field in (
        (UsageKind.SMS, "sms_price"),
        (UsageKind.EMAIL, "email_price"),
        (UsageKind.FAX, "fax_page_price"),
        (UsageKind.FILE_TRANSFER, "file_transfer_price"),
    ):
        if changes.get(field) is not None:
            prices[kind] = Decimal(changes[field])
    rates = Rates(**{**_rates_fields(plan.rates), **rate_changes, "unit_prices": prices})  # type: ignore[arg-type]
    updated = dataclasses.replace(
        plan,
        name=changes.get("name") or plan.name,
        monthly_price=plan.monthly_price
        if changes.get("monthly_price") is None
        else changes["monthly_price"],
        included_minutes=plan.included_minutes
        if changes.get("included_minutes") is None
        else changes["included_minutes"],
        features=plan.features if changes.get("features") is None else tuple(changes["features"]),
        active=plan.active if changes.get("active") is None else changes["active"],
        rates=rates,
    )
    return PlanOut.of(await plans.replace(updated))


def _rates_fields(rates: Rates) -> dict[str, object]:
    return {f.name: getattr(rates, f.name) for f in dataclasses.fields(rates)}


async def _subscription_out(session: SessionDep, settings: SettingsDep, tenant_id: str) -> SubscriptionOut:
    tenant = await TenantRepository(session).get(tenant_id)
    pricing = await pricing_for(session, settings, tenant_id, tenant.currency)
    return SubscriptionOut.of(tenant_id, pricing.plan, pricing.subscription, pricing.rates)


@router.get(
    "/v1/subscription",
    summary="The caller's plan, period and quota used, and the rates charged now",
    tags=["subscription"],
    responses=problem_responses(403, 404),
)
async def get_subscription(
    session: SessionDep, settings: SettingsDep, caller: WalletReaderDep
) -> SubscriptionOut:
    return await _subscription_out(session, settings, caller.own_tenant())


@router.put(
    "/v1/subscription",
    summary="Change plan",
    description="The current period and the quota used in it carry over; the new plan's included minutes "
    "apply for the rest of the period and its monthly price from the next period.",
    tags=["subscription"],
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def change_subscription(
    body: SubscriptionChange, session: SessionDep, settings: SettingsDep, caller: WalletWriterDep
) -> SubscriptionOut:
    tenant_id = caller.own_tenant()
    await subscribe(session, tenant_id, body.plan_id, actor=caller.actor)
    return await _subscription_out(session, settings, tenant_id)


@router.put(
    "/v1/admin/tenants/{tenant_id}/subscription",
    summary="Override a tenant's plan (withdrawn plans allowed)",
    tags=["admin: plans"],
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def override_subscription(
    tenant_id: Annotated[str, Path(pattern=TENANT_ID_PATTERN)],
    body: SubscriptionChange,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
) -> SubscriptionOut:
    await subscribe(session, tenant_id, body.plan_id, actor=admin.actor, allow_inactive=True)
    return await _subscription_out(session, settings, tenant_id)


@router.get(
    "/v1/admin/billing-defaults/{currency}",
    summary="Rates for tenants without a plan, and the minimum balance to place a call",
    tags=["admin: plans"],
    responses=problem_responses(403),
)
async def get_billing_defaults(
    currency: CurrencyPath, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> BillingDefaultsOut:
    rates, minimum = await default_pricing(session, settings, check_currency(currency))
    return BillingDefaultsOut(rates=RatesOut.of(rates), minimum_balance=MoneyOut.of(minimum, currency))


@router.put(
    "/v1/admin/billing-defaults/{currency}",
    summary="Set the default rates and minimum balance for a currency",
    tags=["admin: plans"],
    responses=problem_responses(403),
    dependencies=[Idempotent],
)
async def put_billing_defaults(
    currency: CurrencyPath, body: BillingDefaultsIn, session: SessionDep, admin: AdminDep
) -> BillingDefaultsOut:
    rates = body.to_rates(check_currency(currency))
    await BillingDefaultsRepository(session).put(
        rates, minimum_balance=body.minimum_balance, updated_by=admin.actor
    )
    return BillingDefaultsOut(
        rates=RatesOut.of(rates), minimum_balance=MoneyOut.of(body.minimum_balance, currency)
    )
