"""Auto top-up for INR tenants (Razorpay): with no mandate, one payment link to the billing contacts,
credited once when it is paid (webhook or reconcile), never a second link for the same auto top-up."""

from __future__ import annotations

from typing import Any

from tests.fixtures.auto_topup import FakePaymentLinks
from tests.fixtures.inr_auto_topup import AMOUNT, CONTACTS, START, InrAutoTopup
from walletsvc.domain.auto_topup import AutoTopupStatus


async def _link_sent(inr: InrAutoTopup, links: FakePaymentLinks) -> dict[str, Any]:
    """Auto top-up on with no mandate: the job sends one payment link. Answers it."""
    await inr.enable()  # no card needed: the fallback is a payment link
    assert await inr.run() == [AutoTopupStatus.REQUIRES_ACTION]
    (link,) = links.links.values()
    return link


async def test_an_inr_tenant_without_a_mandate_gets_one_payment_link_and_is_credited_once(
    inr: InrAutoTopup, links: FakePaymentLinks
) -> None:
    link = await _link_sent(inr, links)
    (request,) = links.create_requests
    (attempt,) = await inr.attempts()
    assert request["amount"] == AMOUNT
    assert request["currency"] == "INR"
    assert request["reference_id"] == attempt["topup_id"]
    assert request["customer"]["email"] == "billing@acme.example"
    assert request["notify"]["email"] is True
    sent = await inr.events("auto_topup.payment_link_sent")
    assert len(sent) == 1
    assert sent[0]["payload"]["url"] == link["short_url"]
    assert sent[0]["payload"]["recipients"] == CONTACTS
    assert sent[0]["payload"]["amount"] == {"amount": AMOUNT, "currency": "INR"}

    # While the link waits, no other auto top-up starts, and running the job again sends nothing.
    await inr.change(threshold=60_000)
    assert await inr.run() == []
    assert len(await inr.attempts()) == 1
    assert len(links.create_requests) == 1

    paid_link, payment = links.pay(link["id"])
    for _ in range(2):  # Razorpay retries a webhook; it counts once
        await inr.deliver_link("payment_link.paid", paid_link, payment)
    await inr.reconcile(resume=False)  # reads the paid link: nothing more
    assert await inr.balance() == START + AMOUNT
    (attempt,) = await inr.attempts()
    assert attempt["status"] == "succeeded"
    assert [e["type"] for e in await inr.events()] == ["auto_topup.payment_link_sent", "auto_topup.succeeded"]


async def test_a_paid_link_whose_webhook_was_lost_is_credited_by_reconcile(
    inr: InrAutoTopup, links: FakePaymentLinks
) -> None:
    link = await _link_sent(inr, links)
    links.pay(link["id"])
    first = await inr.reconcile()
    second = await inr.reconcile()
    assert first.credited >= 1
    assert second.errors == []
    assert await inr.balance() == START + AMOUNT
    assert (await inr.attempts())[0]["status"] == "succeeded"


async def test_a_link_whose_answer_was_lost_is_found_again_never_sent_twice(
    inr: InrAutoTopup, links: FakePaymentLinks
) -> None:
    links.lose_next_answer = True
    # Razorpay made the link but its answer was lost; the retry is refused (reference_id taken) and the
    # first link is found by its reference_id instead.
    link = await _link_sent(inr, links)
    assert len(links.create_requests) == 2
    assert len(links.links) == 1
    assert len(await inr.events("auto_topup.payment_link_sent")) == 1
    paid_link, payment = links.pay(link["id"])
    await inr.deliver_link("payment_link.paid", paid_link, payment)
    assert await inr.balance() == START + AMOUNT


async def test_an_expired_link_ends_the_auto_topup_and_backs_off(
    inr: InrAutoTopup, links: FakePaymentLinks
) -> None:
    link = await _link_sent(inr, links)
    link["status"] = "expired"
    await inr.deliver_link("payment_link.expired", link)
    (attempt,) = await inr.attempts()
    assert attempt["status"] == "failed"
    assert attempt["failure_code"] == "payment_link_expired"
    state = await inr.state()
    assert state["consecutive_failures"] == 1
    assert state["paused_until"] is not None
    assert await inr.balance() == START
