"""Business errors. Each is mapped to an HTTP status and a stable `code` in one table (api/errors.py)."""

from __future__ import annotations


class WalletError(Exception):
    """Base of every expected business error; never a 500."""

    # Set when what was written before the error must still be committed: a top-up or refund that
    # reached a provider call stays on record (pending, or failed with its reason), never lost.
    keep_changes: bool = False

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(WalletError):
    """The thing asked for does not exist, or the caller may not know that it does."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} was not found")
        self.what = what
        self.ident = ident


class AlreadyExists(WalletError):
    """A create named an id that is taken."""


class InsufficientFunds(WalletError):
    """A debit larger than what the wallet has available."""

    def __init__(self, *, available: int, requested: int, currency: str) -> None:
        super().__init__(
            f"the wallet has {available} {currency} minor units available; {requested} were asked for"
        )
        self.available = available
        self.requested = requested
        self.currency = currency


class UsageOwed(InsufficientFunds):
    """Usage that happened and was charged, but which the wallet could not pay in full: what it could not
    pay is recorded as owed and paid off by the next credit."""

    def __init__(
        self, *, charge_id: int, amount: int, charged: int, owed: int, available: int, currency: str
    ) -> None:
        super().__init__(available=available, requested=amount, currency=currency)
        self.detail = (
            f"charge {charge_id}: the wallet paid {charged} of {amount} {currency} minor units; "
            f"{owed} are owed and will be paid from the next top-up"
        )
        self.args = (self.detail,)
        self.charge_id = charge_id
        self.amount = amount
        self.charged = charged
        self.owed = owed


class CurrencyMismatch(WalletError):
    """Money of one currency met money of another; walletsvc never converts."""

    def __init__(self, *, expected: str, got: str) -> None:
        super().__init__(f"the wallet's currency is {expected}; {got} was given")
        self.expected = expected
        self.got = got


class UnknownCurrency(WalletError):
    """Not an ISO 4217 currency code walletsvc knows."""

    def __init__(self, currency: str) -> None:
        super().__init__(f"{currency!r} is not an ISO 4217 currency code")
        self.currency = currency


class InvalidRequest(WalletError):
    """A request that is well-formed but makes no sense (bad cursor, until before since, ...)."""


class InvalidEmailAddress(InvalidRequest):
    """A billing contact that is not a deliverable e-mail address; `index` is its place in the list."""

    def __init__(self, *, index: int, reason: str) -> None:
        super().__init__(f"emails[{index}] is not a valid e-mail address: {reason}")
        self.index = index
        self.reason = reason


class Unauthorized(WalletError):
    """No credentials, or credentials that are wrong, expired or forged."""


class Forbidden(WalletError):
    """Valid credentials that may not do this."""


class IdempotencyKeyReused(WalletError):
    """An Idempotency-Key sent again with a different request."""


class IdempotencyInProgress(WalletError):
    """An Idempotency-Key whose first request is still being processed."""


class BelowMinimum(WalletError):
    """An amount under the smallest one allowed (a top-up under the minimum recharge, a balance under
    the minimum needed to place a call)."""

    def __init__(self, detail: str, *, minimum: int, currency: str) -> None:
        super().__init__(detail)
        self.minimum = minimum
        self.currency = currency


class AboveMaximum(WalletError):
    """An amount over the largest one allowed."""

    def __init__(self, detail: str, *, maximum: int, currency: str) -> None:
        super().__init__(detail)
        self.maximum = maximum
        self.currency = currency


class InvalidSignature(WalletError):
    """A webhook or payment signature that does not verify: forged, tampered, stale or unsigned."""


class InvalidPayment(WalletError):
    """A payment that does not belong to the top-up, or is not (yet) captured by the provider."""


class ProviderNotConfigured(WalletError):
    """The provider chosen for this payment has no credentials here (or refused them). `settings` names
    the environment settings to set or fix, so the 503 says what an operator must do."""

    def __init__(self, detail: str, *, settings: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.settings = settings


class ProviderUnavailable(WalletError):
    """The provider timed out, failed with a 5xx, or its circuit is open after repeated failures."""


class Conflict(WalletError):
    """The thing is in a state that does not allow this (a refund of a top-up that never succeeded)."""


class InvalidBillingDetails(InvalidRequest):
    """Billing details that do not fit their country (a GSTIN of the wrong shape, an unknown state);
    `field` names the one at fault."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PeriodNotEnded(Conflict):
    """A statement asked for a month that has not ended yet (or ended too recently to be final)."""


class AutoTopupLocked(Conflict):
    """An owner tried to switch on an auto top-up that an admin has locked off."""


class NoPaymentMethod(InvalidRequest):
    """Auto top-up needs a saved payment method, and none (or not the one named) is saved."""


class WebhookUrlNotAllowed(InvalidRequest):
    """A webhook endpoint URL walletsvc will not call: not https, carrying credentials, or a host that is
    or resolves to a loopback, private, link-local or otherwise non-public address."""


class WebhookSecretsNotConfigured(WalletError):
    """Endpoint signing secrets cannot be encrypted or read: WEBHOOK_SECRETS_KEY is not set."""


class DatabaseUnavailable(WalletError):
    """The database could not be used for this request. Not an answer to the request (it is never
    stored as an Idempotency-Key's answer) and not the caller's fault: the caller should retry after
    `retry_after_seconds`, with the same Idempotency-Key for a change.

    `reached_server` is False when the failed statement provably never left this process (the
    connection was already closed, or none could be had), so nothing it asked for can have happened; a
    COMMIT that may have reached the server may have committed. `retried` says the work was already
    repeated once on a fresh connection, so nobody above should repeat it again.
    """

    def __init__(
        self,
        detail: str,
        *,
        retry_after_seconds: int = 1,
        reached_server: bool = True,
        retried: bool = False,
    ) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
        self.reached_server = reached_server
        self.retried = retried


class ConnectionLost(DatabaseUnavailable):
    """A connection that was working died (the server ended it, restarted or failed over, or the network
    cut it): the same work on a fresh connection will usually succeed."""

    def __init__(
        self,
        detail: str = "the database connection was lost; retry the request",
        *,
        reached_server: bool = True,
        retried: bool = False,
    ) -> None:
        super().__init__(detail, reached_server=reached_server, retried=retried)


class DatabaseUnreachable(DatabaseUnavailable):
    """No connection could be had: the server refused or did not answer, is starting or shutting down,
    has no connection slot left, or every pooled connection stayed busy. Repeating at once would not
    help."""

    def __init__(self, detail: str = "the database cannot be reached; retry the request later") -> None:
        super().__init__(detail, retry_after_seconds=5, reached_server=False)
