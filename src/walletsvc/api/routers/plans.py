"""Plans (public list, admin edit), subscriptions, and the default rates per currency."""

from __future__ import annotations

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
from walletsvc.db.repositories.plans import PlanRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.money import check_currency
from walletsvc.domain.rating import UsageKind
from walletsvc.services.plan_catalog import PlanChanges, add_plan, change_plan, set_billing_defaults
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
    return PlanOut.of(await add_plan(session, plan))


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
    changes = body.model_dump(exclude_unset=True)
    unit_prices = {
        kind: Decimal(changes[name])
        for kind, name in (
            (UsageKind.SMS, "sms_price"),
            (UsageKind.EMAIL, "email_price"),
            (UsageKind.FAX, "fax_page_price"),
            (UsageKind.FILE_TRANSFER, "file_transfer_price"),
        )
        if changes.get(name) is not None
    }
    features = changes.get("features")
    plan = await change_plan(
        session,
        plan_id,
        PlanChanges(
            name=changes.get("name"),
            monthly_price=changes.get("monthly_price"),
            included_minutes=changes.get("included_minutes"),
            features=tuple(features) if features is not None else None,
            active=changes.get("active"),
            per_minute_rate=_decimal(changes.get("per_minute_rate")),
            connection_fee=_decimal(changes.get("connection_fee")),
            billing_increment_seconds=changes.get("billing_increment_seconds"),
            minimum_billable_seconds=changes.get("minimum_billable_seconds"),
            unit_prices=unit_prices,
        ),
    )
    return PlanOut.of(plan)


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


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
    await set_billing_defaults(session, rates, minimum_balance=body.minimum_balance, updated_by=admin.actor)
    return BillingDefaultsOut(
        rates=RatesOut.of(rates), minimum_balance=MoneyOut.of(body.minimum_balance, currency)
    )
