"""Wallets, tenants and ledger rows as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from walletsvc.api.schemas import examples
from walletsvc.api.schemas.common import NO_NUL_PATTERN, MoneyOut
from walletsvc.domain.auto_topup import AutoTopupSettings
from walletsvc.domain.errors import UnknownCurrency
from walletsvc.domain.ledger import EntryType, LedgerEntry, Wallet
from walletsvc.domain.money import check_currency
from walletsvc.domain.tenants import Tenant

TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MAX_AMOUNT = 10**15  # far above any real top-up, far below the bigint limit


class AutoTopupOut(BaseModel):
    enabled: bool
    threshold: MoneyOut | None
    amount: MoneyOut | None


class WalletOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.WALLET))
    tenant_id: str
    currency: str
    balance: MoneyOut
    reserved: MoneyOut = Field(description="Held for calls in progress")
    available: MoneyOut = Field(description="balance - reserved")
    low_balance_threshold: MoneyOut
    below_threshold: bool
    flagged: bool = Field(description="Set when a charge could not be paid in full; lifted when it is")
    owed: MoneyOut = Field(description="Usage the wallet could not pay yet; the next credit pays it first")
    max_concurrent_calls: int | None = Field(description="null: no limit")
    daily_spend_cap: MoneyOut | None = Field(description="null: no cap")
    auto_topup: AutoTopupOut
    updated_at: datetime

    @classmethod
    def of(cls, wallet: Wallet, auto_topup: AutoTopupSettings | None = None) -> WalletOut:
        c = wallet.currency

        def money(amount: int | None) -> MoneyOut | None:
            return None if amount is None else MoneyOut.of(amount, c)

        at = auto_topup or AutoTopupSettings(enabled=False, threshold=None, amount=None)
        return cls(
            tenant_id=wallet.tenant_id,
            currency=c,
            balance=MoneyOut.of(wallet.balance, c),
            reserved=MoneyOut.of(wallet.reserved, c),
            available=MoneyOut.of(wallet.available, c),
            low_balance_threshold=MoneyOut.of(wallet.low_balance_threshold, c),
            below_threshold=wallet.below_threshold,
            flagged=wallet.flagged,
            owed=MoneyOut.of(wallet.owed, c),
            max_concurrent_calls=wallet.max_concurrent_calls,
            daily_spend_cap=money(wallet.daily_spend_cap),
            auto_topup=AutoTopupOut(
                enabled=at.enabled, threshold=money(at.threshold), amount=money(at.amount)
            ),
            updated_at=wallet.updated_at,
        )


class LowBalanceThresholdIn(BaseModel):
    """A tenant's own low-balance threshold: below it (available balance), `wallet.low_balance` is sent."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"amount": 50_000, "currency": "INR"}]}
    )
    amount: StrictInt = Field(ge=0, le=MAX_AMOUNT, description="Minor units; 0 turns low-balance alerts off")
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Optional: checked against the wallet's currency"
    )


class TenantCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TENANT_CREATE))
    id: str = Field(pattern=TENANT_ID_PATTERN, description="The platform's own id for the tenant")
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)
    country: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3, e.g. IND")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217; the wallet's currency, fixed")
    data_residency_region: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9-]+$")
    payments_provider: Literal["stripe", "razorpay"] | None = Field(
        default=None, description="Empty: the geography default"
    )
    low_balance_threshold: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_AMOUNT,
        description="Minor units; 0: no low-balance alerts; omitted: the currency's default "
        "(LOW_BALANCE_THRESHOLDS)",
    )

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            return check_currency(value)
        except UnknownCurrency as exc:
            raise ValueError(exc.detail) from exc


class TenantOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TENANT))
    id: str
    name: str
    country: str
    currency: str
    data_residency_region: str | None
    payments_provider: str | None
    created_at: datetime
    wallet: WalletOut

    @classmethod
    def of(cls, tenant: Tenant, wallet: Wallet) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            country=tenant.country,
            currency=tenant.currency,
            data_residency_region=tenant.data_residency_region,
            payments_provider=tenant.payments_provider.value if tenant.payments_provider else None,
            created_at=tenant.created_at,
            wallet=WalletOut.of(wallet),
        )


class ReferenceOut(BaseModel):
    type: str
    id: str


class TransactionOut(BaseModel):
    id: str
    tenant_id: str
    seq: int = Field(description="Position in the wallet's ledger, from 1")
    type: EntryType
    amount: MoneyOut = Field(description="Signed: credits positive, debits negative")
    balance_before: MoneyOut
    balance_after: MoneyOut
    counter_account: str
    reference: ReferenceOut
    description: str
    actor: str
    created_at: datetime

    @classmethod
    def of(cls, e: LedgerEntry) -> TransactionOut:
        c = e.currency
        return cls(
            id=str(e.id),
            tenant_id=e.tenant_id,
            seq=e.seq,
            type=e.type,
            amount=MoneyOut.of(e.amount, c),
            balance_before=MoneyOut.of(e.balance_before, c),
            balance_after=MoneyOut.of(e.balance_after, c),
            counter_account=e.counter_account,
            reference=ReferenceOut(type=e.reference_type, id=e.reference_id),
            description=e.description,
            actor=e.actor,
            created_at=e.created_at,
        )


class AdjustmentCreate(BaseModel):
    amount: StrictInt = Field(
        ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="Signed minor units: positive credits, negative debits"
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Optional; must be the wallet's currency"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL_PATTERN)
    allow_negative: StrictBool = Field(default=False, description="Let a debit take the balance below zero")

    @field_validator("amount")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment moves a non-zero amount")
        return value

    @field_validator("reason")
    @classmethod
    def _reason_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must say something")
        return value.strip()


class AdjustmentOut(BaseModel):
    transaction: TransactionOut
    wallet: WalletOut
