"""The e-mails as rendered from events: a subject people understand, both parts, data escaped, and a
payload that is missing fields or has the wrong shapes still renders (it never fails the job)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from walletsvc.domain.events import EventType
from walletsvc.services.email_messages import (
    EMAILED_TYPES,
    SMTP_POLICY,
    build_message,
    message_id_for,
    money_text,
    one_line,
    render,
)

WHEN = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def _render(type: str, payload: Any, tenant: str = "Acme Calls") -> tuple[str, str, str]:
    rendered = render(type, payload, tenant_name=tenant, event_id="evt_1", created_at=WHEN)
    assert rendered is not None
    return rendered.subject, rendered.text, rendered.html


def test_the_emailed_types_are_the_ones_billing_contacts_need() -> None:
    assert sorted(EMAILED_TYPES) == [
        "auto_topup.capped",
        "auto_topup.disabled",
        "auto_topup.payment_link_sent",
        "auto_topup.requires_action",
        "plan_fee.owed",
        "topup.failed",
        "topup.succeeded",
        "wallet.low_balance",
        "wallet.low_balance_resolved",
    ]


@pytest.mark.parametrize(
    ("type", "payload", "subject", "shown"),
    [
        (
            EventType.AUTO_TOPUP_REQUIRES_ACTION,
            {
                "auto_topup_id": "at_1",
                "amount": {"amount": 2000, "currency": "USD"},
                "action_url": "https://hooks.stripe.com/3d_secure/at_1",
            },
            "Confirm the automatic top-up of $20.00 for Acme Calls",
            ["https://hooks.stripe.com/3d_secure/at_1", "3-D Secure"],
        ),
        (
            EventType.AUTO_TOPUP_DISABLED,
            {"reason": "failures", "consecutive_failures": 3, "last_failure": "Your card was declined."},
            "Auto top-up switched off for Acme Calls",
            ["3", "Your card was declined.", "Save a new card"],
        ),
        (
            EventType.AUTO_TOPUP_CAPPED,
            {
                "cap": "max_per_day",
                "detail": "2 auto top-ups a day",
                "amount": {"amount": 500, "currency": "USD"},
                "until": "2026-12-02T00:00:00+00:00",
            },
            "Auto top-up limit reached for Acme Calls",
            ["2 auto top-ups a day", "$5.00", "2026-12-02T00:00:00+00:00"],
        ),
        (
            EventType.AUTO_TOPUP_PAYMENT_LINK_SENT,
            {
                "topup_id": "tu_1",
                "amount": {"amount": 50000, "currency": "INR"},
                "url": "https://rzp.io/i/abc123",
                "expires_at": 1796169600,
            },
            "Pay Rs 500.00 to top up Acme Calls",
            ["https://rzp.io/i/abc123", "2 Dec 2026, 00:00 UTC", "tu_1"],
        ),
    ],
)
def test_auto_topup_emails_say_what_to_do(
    type: EventType, payload: dict[str, Any], subject: str, shown: list[str]
) -> None:
    found_subject, text, html = _render(type, payload)
    assert found_subject == subject
    for expected in shown:
        assert expected in text
        assert expected in html
    assert render("adjustment.created", {}, tenant_name="A", event_id="evt_1", created_at=WHEN) is None


@pytest.mark.parametrize("type", sorted(EMAILED_TYPES))
@pytest.mark.parametrize(
    "payload",
    [{}, None, [], "text", {"amount": 5.5}, {"available": {"amount": "5", "currency": "INR"}}, {"owed": 7}],
)
def test_any_payload_renders_without_the_fields_it_lacks(type: str, payload: Any) -> None:
    subject, text, html = _render(type, payload)
    assert "Acme Calls" in subject
    assert "Reference:" in text
    assert "evt_1" in html
    assert "None" not in text
    assert "5.5" not in text


def test_money_text_accepts_only_money() -> None:
    assert money_text({"amount": 50000, "currency": "INR"}) == "Rs 500.00"
    assert money_text({"amount": 1250, "currency": "KWD"}) == "KD 1.250"
    assert money_text({"amount": 12, "currency": "ZZZ"}) == "ZZZ 12 (minor units)"
    for bad in (
        None,
        5,
        {"amount": 5.0, "currency": "USD"},
        {"amount": True, "currency": "USD"},
        {"amount": 5},
    ):
        assert money_text(bad) is None


def test_subjects_say_what_happened_with_the_amount() -> None:
    inr = {"amount": 50000, "currency": "INR"}
    assert (
        _render(EventType.TOPUP_SUCCEEDED, {"amount": inr})[0]
        == "Receipt: Rs 500.00 added to the Acme Calls wallet"
    )
    assert (
        _render(EventType.TOPUP_FAILED, {"amount": inr})[0]
        == "Payment failed: top-up of Rs 500.00 for Acme Calls"
    )
    assert (
        _render(EventType.WALLET_LOW_BALANCE, {"available": inr})[0]
        == "Low balance on Acme Calls: Rs 500.00 available"
    )
    assert _render(EventType.WALLET_LOW_BALANCE_RESOLVED, {})[0] == "Balance restored on Acme Calls"
    assert _render(EventType.PLAN_FEE_OWED, {"owed": inr})[0] == "Plan fee owed by Acme Calls: Rs 500.00"


def test_data_is_escaped_in_html_and_kept_on_one_line_in_headers() -> None:
    subject, text, html = _render(
        EventType.TOPUP_FAILED, {"reason": '<img src=x onerror="alert(1)">'}, tenant="A&B <Co>\nBcc: x@y.z"
    )
    assert subject == "Payment failed for A&B <Co> Bcc: x@y.z"
    assert "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "A&amp;B &lt;Co&gt;" in html
    assert '<img src=x onerror="alert(1)">' in text  # plain text is not HTML
    assert one_line("a\r\nb\x00c\td") == "a b c d"
    assert one_line("x" * 300, 10) == "x" * 9 + "…"


def test_a_message_has_both_parts_and_a_deterministic_message_id() -> None:
    rendered = render(
        EventType.TOPUP_SUCCEEDED,
        {"amount": {"amount": 500, "currency": "USD"}},
        tenant_name="Ünïcode Co",
        event_id="evt_abc",
        created_at=WHEN,
    )
    assert rendered is not None
    sender = "Billing <billing@Example.COM>"
    mid = message_id_for("evt_abc", "a@x.example", sender)
    assert mid == message_id_for("evt_abc", "A@X.example", sender)  # the same mailbox, the same id
    assert mid != message_id_for("evt_abc", "b@x.example", sender)
    assert mid != message_id_for("evt_abd", "a@x.example", sender)
    assert mid.startswith("<evt_abc.")
    assert mid.endswith("@example.com>")
    message = build_message(
        rendered, sender=sender, recipient="a@x.example", message_id=mid, date=WHEN, event_id="evt_abc"
    )
    wire = message.as_bytes(policy=SMTP_POLICY)
    parsed = message_from_bytes(wire, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == mid
    assert parsed["Subject"] == "Receipt: $5.00 added to the Ünïcode Co wallet"
    assert parsed["Date"] == "Tue, 01 Dec 2026 10:30:00 +0000"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert b"\r\n" in wire
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
    assert (
        message_id_for("evt_abc", "a@x.example", "no address")
        == f"<evt_abc.{mid.split('.')[1].split('@')[0]}@walletsvc.invalid>"
    )
