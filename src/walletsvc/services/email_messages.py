"""The e-mails themselves: subject, plain-text and HTML parts, rendered from an event's payload.

Rendering is defensive: a payload field that is missing or not the expected shape is left out of the
message, never a failed job. Everything that comes from data (tenant name, reasons, ids) is HTML-escaped
in the HTML part and stripped of line breaks in the subject.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from walletsvc.domain.errors import UnknownCurrency
from walletsvc.domain.events import EventType
from walletsvc.domain.money_format import format_amount

# What is e-mailed to billing contacts; every other event type goes to webhooks only.
EMAILED_TYPES: frozenset[str] = frozenset(
    {
        EventType.WALLET_LOW_BALANCE.value,
        EventType.WALLET_LOW_BALANCE_RESOLVED.value,
        EventType.TOPUP_SUCCEEDED.value,
        EventType.TOPUP_FAILED.value,
        EventType.PLAN_FEE_OWED.value,
        # Auto top-up: what the customer must act on. Its success and failure are e-mailed as the
        # top-up's own receipt and payment failure (topup.succeeded / topup.failed), once each.
        EventType.AUTO_TOPUP_REQUIRES_ACTION.value,
        EventType.AUTO_TOPUP_DISABLED.value,
        EventType.AUTO_TOPUP_CAPPED.value,
        EventType.AUTO_TOPUP_PAYMENT_LINK_SENT.value,
    }
)

# Headers are not folded below SMTP's hard limit (998): a folded Message-ID reads back with a leading space.
_POLICY = policy.default.clone(max_line_length=998)
SMTP_POLICY = policy.SMTP.clone(max_line_length=998)  # the same, with CRLF line ends, for the wire
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class _Content:
    subject: str
    intro: str
    rows: list[tuple[str, str]]
    closing: str


def one_line(value: str, limit: int = _MAX_NAME) -> str:
    """Data bound for a header: no line breaks or control characters (no header injection), bounded."""
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def money_text(value: Any) -> str | None:
    """`{"amount": 50000, "currency": "INR"}` -> `Rs 500.00`; None when it is not money."""
    if not isinstance(value, Mapping):
        return None
    amount, currency = value.get("amount"), value.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
        return None
    try:
        return format_amount(amount, currency)
    except UnknownCurrency:
        return f"{one_line(currency, 8)} {amount} (minor units)"


def _text(value: Any, limit: int = 300) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    return one_line(str(value), limit) or None


def _when(moment: datetime) -> str:
    return moment.strftime("%-d %b %Y, %H:%M UTC") if moment.utcoffset() is not None else str(moment)


def _rows(*pairs: tuple[str, str | None]) -> list[tuple[str, str]]:
    return [(label, value) for label, value in pairs if value]


def _low_balance(p: Mapping[str, Any], tenant: str) -> _Content:
    available, threshold = money_text(p.get("available")), money_text(p.get("threshold"))
    return _Content(
        subject=f"Low balance on {tenant}: {available} available"
        if available
        else f"Low balance on {tenant}",
        intro=f"The available balance of the {tenant} wallet has fallen below its low-balance alert threshold.",
        rows=_rows(
            ("Available", available), ("Balance", money_text(p.get("balance"))), ("Threshold", threshold)
        ),
        closing="Top up soon to keep your calls and messages running.",
    )


def _low_balance_resolved(p: Mapping[str, Any], tenant: str) -> _Content:
    available = money_text(p.get("available"))
    return _Content(
        subject=f"Balance restored on {tenant}: {available} available"
        if available
        else f"Balance restored on {tenant}",
        intro=f"The available balance of the {tenant} wallet is back above its low-balance alert threshold.",
        rows=_rows(("Available", available), ("Threshold", money_text(p.get("threshold")))),
        closing="No action is needed.",
    )


def _topup_succeeded(p: Mapping[str, Any], tenant: str) -> _Content:
    amount = money_text(p.get("amount"))
    provider = _text(p.get("provider"), 40)
    return _Content(
        subject=f"Receipt: {amount} added to the {tenant} wallet"
        if amount
        else f"Receipt: top-up of {tenant}",
        intro=f"Thank you. Your top-up of the {tenant} wallet succeeded and has been credited.",
        rows=_rows(
            ("Amount", amount),
            ("Bonus", money_text(p.get("bonus"))),
            ("Paid with", provider.capitalize() if provider else None),
            ("Top-up", _text(p.get("topup_id"), 80)),
        ),
        closing="Keep this e-mail as your receipt; the invoice for this top-up is attached as a PDF.",
    )


def _topup_failed(p: Mapping[str, Any], tenant: str) -> _Content:
    amount = money_text(p.get("amount"))
    return _Content(
        subject=f"Payment failed: top-up of {amount} for {tenant}"
        if amount
        else f"Payment failed for {tenant}",
        intro=f"A payment to top up the {tenant} wallet did not go through, so the wallet was not credited.",
        rows=_rows(
            ("Amount", amount), ("Reason", _text(p.get("reason"))), ("Top-up", _text(p.get("topup_id"), 80))
        ),
        closing="You can try again with another payment method from the billing page.",
    )


def _plan_fee_owed(p: Mapping[str, Any], tenant: str) -> _Content:
    owed = money_text(p.get("owed"))
    start, end = _text(p.get("period_start"), 40), _text(p.get("period_end"), 40)
    period = f"{start} to {end}" if start and end else start or end
    return _Content(
        subject=f"Plan fee owed by {tenant}: {owed}" if owed else f"Plan fee owed by {tenant}",
        intro=f"The {tenant} wallet could not pay this period's plan fee in full; the rest is owed.",
        rows=_rows(
            ("Plan", _text(p.get("plan_name"), 80) or _text(p.get("plan_id"), 80)),
            ("Period", period),
            ("Plan fee", money_text(p.get("fee"))),
            ("Paid from the wallet", money_text(p.get("charged"))),
            ("Owed", owed),
        ),
        closing="The amount owed is paid first from your next top-up.",
    )


def _auto_topup_requires_action(p: Mapping[str, Any], tenant: str) -> _Content:
    amount = money_text(p.get("amount"))
    return _Content(
        subject=f"Confirm the automatic top-up of {amount} for {tenant}"
        if amount
        else f"Confirm the automatic top-up for {tenant}",
        intro=f"Your bank asks you to confirm the automatic top-up of the {tenant} wallet (3-D Secure). "
        "Until you do, it is not charged and no other automatic top-up starts.",
        rows=_rows(
            ("Amount", amount),
            ("Confirm at", _text(p.get("action_url"), 500)),
            ("Auto top-up", _text(p.get("auto_topup_id"), 80)),
        ),
        closing="Open the link above to confirm the payment; the wallet is credited once it succeeds.",
    )


def _auto_topup_disabled(p: Mapping[str, Any], tenant: str) -> _Content:
    failures = p.get("consecutive_failures")
    return _Content(
        subject=f"Auto top-up switched off for {tenant}",
        intro=f"Automatic top-up of the {tenant} wallet has been switched off after repeated declines.",
        rows=_rows(
            ("Declines in a row", str(failures) if isinstance(failures, int) else None),
            ("Last reason", _text(p.get("last_failure"))),
        ),
        closing="Save a new card or switch auto top-up on again from the billing page.",
    )


def _auto_topup_capped(p: Mapping[str, Any], tenant: str) -> _Content:
    return _Content(
        subject=f"Auto top-up limit reached for {tenant}",
        intro=f"An automatic top-up of the {tenant} wallet was not made: it would pass a limit you set.",
        rows=_rows(
            ("Amount", money_text(p.get("amount"))),
            ("Limit", _text(p.get("detail"))),
            ("Next possible", _text(p.get("until"), 40)),
        ),
        closing="Raise the daily or monthly limit on the billing page, or top up by hand.",
    )


def _auto_topup_payment_link(p: Mapping[str, Any], tenant: str) -> _Content:
    amount = money_text(p.get("amount"))
    expires = p.get("expires_at")  # a Unix time, as Razorpay's expire_by
    expiry = (
        _when(datetime.fromtimestamp(expires, UTC))
        if isinstance(expires, int) and not isinstance(expires, bool) and 0 < expires < 10**11
        else _text(expires, 40)
    )
    return _Content(
        subject=f"Pay {amount} to top up {tenant}" if amount else f"Pay to top up {tenant}",
        intro=f"The {tenant} wallet is below its auto top-up threshold and has no saved payment method "
        "that can be charged automatically. Pay this link to top it up.",
        rows=_rows(
            ("Amount", amount),
            ("Pay at", _text(p.get("url"), 500)),
            ("Link expires", expiry),
            ("Top-up", _text(p.get("topup_id"), 80)),
        ),
        closing="The wallet is credited once the payment succeeds.",
    )


_CONTENT = {
    EventType.WALLET_LOW_BALANCE.value: _low_balance,
    EventType.WALLET_LOW_BALANCE_RESOLVED.value: _low_balance_resolved,
    EventType.TOPUP_SUCCEEDED.value: _topup_succeeded,
    EventType.TOPUP_FAILED.value: _topup_failed,
    EventType.PLAN_FEE_OWED.value: _plan_fee_owed,
    EventType.AUTO_TOPUP_REQUIRES_ACTION.value: _auto_topup_requires_action,
    EventType.AUTO_TOPUP_DISABLED.value: _auto_topup_disabled,
    EventType.AUTO_TOPUP_CAPPED.value: _auto_topup_capped,
    EventType.AUTO_TOPUP_PAYMENT_LINK_SENT.value: _auto_topup_payment_link,
}


def render(
    event_type: str, payload: Any, *, tenant_name: str, event_id: str, created_at: datetime
) -> Rendered | None:
    """The message for an event, or None for a type that is not e-mailed."""
    build = _CONTENT.get(event_type)
    if build is None:
        return None
    tenant = one_line(tenant_name) or "your account"
    content = build(payload if isinstance(payload, Mapping) else {}, tenant)
    rows = [*content.rows, ("Date", _when(created_at)), ("Reference", event_id)]
    width = max(len(label) for label, _ in rows) + 1
    text = "\n".join(
        [
            "Hello,",
            "",
            content.intro,
            "",
            *(f"  {label + ':':<{width}} {value}" for label, value in rows),
            "",
            content.closing,
            "",
            "-- ",
            f"Billing notifications for {tenant}. You receive them as a billing contact of this account.",
            "",
        ]
    )
    e = html.escape
    cells = "\n".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in rows
    )
    body = (
        '<!DOCTYPE html>\n<html><body style="font-family:sans-serif">\n'
        f"<p>Hello,</p>\n<p>{e(content.intro)}</p>\n<table>\n{cells}\n</table>\n<p>{e(content.closing)}</p>\n"
        f'<p style="color:#666;font-size:smaller">Billing notifications for {e(tenant)}. You receive them '
        "as a billing contact of this account.</p>\n</body></html>\n"
    )
    return Rendered(subject=one_line(content.subject, 200), text=text, html=body)


def sender_domain(sender: str) -> str:
    local, at, domain = parseaddr(sender)[1].rpartition("@")
    return domain.strip().lower() if local and at and domain.strip() else "walletsvc.invalid"


def message_id_for(event_id: str, recipient: str, sender: str) -> str:
    """Deterministic: the same event to the same recipient is always the same Message-ID, so a resend
    after a crash is recognisably the same message (the recipient is hashed, not spelled out)."""
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    return f"<{event_id}.{digest}@{sender_domain(sender)}>"


def build_message(
    rendered: Rendered, *, sender: str, recipient: str, message_id: str, date: datetime, event_id: str
) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, no loops
    message["X-Walletsvc-Event-Id"] = event_id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
