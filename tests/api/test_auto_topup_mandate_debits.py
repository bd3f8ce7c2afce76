"""INR auto top-up debiting a Razorpay recurring mandate: once per auto top-up however often the job runs,
credited once whichever of the runner, the webhooks and reconcile tells, even when the mandate was deleted
meanwhile; back-off after failed debits; a payment link where the mandate cannot be used. Registering a
mandate: test_auto_topup_mandate_registration.py."""

from __future__ import annotations

import pytest

from tests.fixtures.auto_topup import (
    FAILS,
    REFUSES,
    FakeMandates,
    FakePaymentLinks,
    end_pause,
    send_token_event,
    token_entity,
)
from tests.fixtures.inr_auto_topup import AMOUNT, AUTH, START, InrAutoTopup, debit_order, waiting_upi_debit
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.domain.errors import ProviderUnavailable


async def test_a_charge_across_the_threshold_debits_the_mandate_once_and_credits_once(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup, token_id = await inr.register()
    (card,) = await inr.methods()
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("RuPay", "8950", 12, 2031)
    await inr.enable()
    assert await inr.run() == [AutoTopupStatus.SUCCEEDED]

    (request,) = mandates.recurring_requests
    (attempt,) = await inr.attempts()
    assert request["token"] == token_id
    assert request["customer_id"] == setup["customer_id"]
    assert request["recurring"] == "1"
    assert request["amount"] == AMOUNT
    assert inr.razorpay.orders[request["order_id"]]["receipt"] == attempt["topup_id"]
    assert attempt["payment_method_id"] == setup["payment_method_id"]
    assert await inr.balance() == START + AUTH + AMOUNT

    # Razorpay's own word arrives too (twice, as Razorpay retries), and reconcile looks: nothing more.
    (debit,) = mandates.debits(request["order_id"])
    order = inr.razorpay.orders[request["order_id"]]
    for event in ("payment.captured", "order.paid", "payment.captured"):
        await inr.deliver_payment(event, debit, order)
    await inr.reconcile()
    assert await inr.balance() == START + AUTH + AMOUNT
    assert len(mandates.recurring_requests) == 1
    assert [e["type"] for e in await inr.events()] == ["auto_topup.succeeded"]


async def test_a_crash_after_razorpay_made_the_debit_resumes_without_a_second_payment(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    await inr.register()
    mandates.lose_next_answer = True  # Razorpay makes the payment; its answer never reaches walletsvc
    await inr.enable()
    with pytest.raises(ProviderUnavailable):
        await inr.run()
    (attempt,) = await inr.attempts()
    assert attempt["status"] == "processing"
    assert await inr.balance() == START + AUTH

    # The job runs again (pgqueuer's retry, or reconcile): it finds the order and its payment.
    assert await inr.run() == [AutoTopupStatus.SUCCEEDED]
    order_id = debit_order(mandates)
    assert len(mandates.recurring_requests) == 1
    assert len(mandates.debits(order_id)) == 1
    assert len([o for o in inr.razorpay.orders.values() if o["receipt"] == attempt["topup_id"]]) == 1
    assert await inr.balance() == START + AUTH + AMOUNT


async def test_a_upi_debit_waiting_for_its_pre_debit_notice_is_finished_by_the_webhook(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    _, debit = await waiting_upi_debit(inr, mandates)
    # Waiting, it is in flight: running it again asks Razorpay for nothing new.
    assert await inr.run() == [AutoTopupStatus.PROCESSING]
    assert len(mandates.recurring_requests) == 1
    assert len(mandates.debits(debit["order_id"])) == 1
    await inr.deliver_payment("payment.captured", inr.razorpay.set_status(debit["id"], "captured"))
    await inr.reconcile(resume=False)
    assert await inr.balance() == START + AUTH + AMOUNT
    assert (await inr.attempts())[0]["status"] == "succeeded"


async def test_above_the_mandates_limit_a_payment_link_goes_instead(
    inr: InrAutoTopup, mandates: FakeMandates, links: FakePaymentLinks
) -> None:
    await inr.register(max_amount=50_000)
    await inr.enable()
    assert await inr.run() == [AutoTopupStatus.REQUIRES_ACTION]
    assert mandates.recurring_requests == []
    (link,) = links.create_requests
    assert link["amount"] == AMOUNT


async def test_a_cancelled_mandate_falls_back_to_a_payment_link(
    inr: InrAutoTopup, mandates: FakeMandates, links: FakePaymentLinks
) -> None:
    _, token_id = await inr.register()
    await send_token_event(inr.client, "token.cancelled", token_entity(token_id, status="cancelled"))
    (method,) = await inr.methods()
    assert (method["status"], method["status_reason"]) == ("cancelled", "Mandate cancelled by the customer")
    await inr.enable()
    assert await inr.run() == [AutoTopupStatus.REQUIRES_ACTION]
    assert mandates.recurring_requests == []
    assert len(links.create_requests) == 1


async def test_a_mandate_razorpay_refuses_to_debit_is_rejected_and_one_link_goes(
    inr: InrAutoTopup, mandates: FakeMandates, links: FakePaymentLinks
) -> None:
    await inr.register()
    mandates.outcome = REFUSES
    await inr.enable()
    assert await inr.run() == [AutoTopupStatus.REQUIRES_ACTION]
    assert await inr.run() == []  # waiting on the link
    assert len(mandates.recurring_requests) == 1
    assert len(links.create_requests) == 1
    (method,) = await inr.methods()
    assert method["status"] == "rejected"
    assert "cancelled" in method["status_reason"]
    (attempt,) = await inr.attempts()
    assert attempt["failure_code"] == "payment_link_sent"
    assert (await inr.state())["consecutive_failures"] == 0  # a refused mandate is not the customer's decline


async def test_failed_debits_back_off_and_three_in_a_row_switch_auto_topup_off(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    await inr.register()
    mandates.outcome = FAILS
    await inr.enable()
    for expected in (1, 2, 3):
        if expected > 1:
            await end_pause(inr.db, inr.tenant)
            await inr.change(threshold=50_000 + expected)
        assert await inr.run() == [AutoTopupStatus.FAILED]
        state = await inr.state()
        assert state["consecutive_failures"] == expected
    assert state["active"] is False
    assert state["disabled_reason"] == "consecutive_failures"
    failed = await inr.events("auto_topup.failed")
    assert failed[0]["payload"]["reason"] == "Payment failed due to insufficient balance"
    assert failed[0]["payload"]["retry_after"] is not None
    await end_pause(inr.db, inr.tenant)
    await inr.change(threshold=50_009)
    assert len(mandates.recurring_requests) == 3  # never a loop
    assert await inr.balance() == START + AUTH


# --- a mandate deleted while its debit is under way -------------------------------------------------------


async def test_a_mandate_deleted_while_its_upi_debit_waits_is_finished_by_the_webhook(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup, debit = await waiting_upi_debit(inr, mandates)
    await inr.delete(setup["payment_method_id"])
    await inr.deliver_payment("payment.captured", inr.razorpay.set_status(debit["id"], "captured"))
    assert await inr.balance() == START + AUTH + AMOUNT
    (attempt,) = await inr.attempts()
    assert attempt["status"] == "succeeded"
    assert await inr.methods() == []


@pytest.mark.parametrize(
    ("outcome", "expected", "credited"), [("captured", "succeeded", AMOUNT), ("failed", "failed", 0)]
)
async def test_reconcile_finishes_a_debit_whose_mandate_was_deleted_from_the_orders_payments(
    inr: InrAutoTopup, mandates: FakeMandates, outcome: str, expected: str, credited: int
) -> None:
    setup, debit = await waiting_upi_debit(inr, mandates)
    await inr.delete(setup["payment_method_id"])
    inr.razorpay.set_status(debit["id"], outcome)  # Razorpay's webhook about it is lost
    if outcome == "failed":
        debit.update(error_description="Mandate revoked by the customer", error_code="BAD_REQUEST_ERROR")

    await inr.reconcile()
    (attempt,) = await inr.attempts()
    assert attempt["status"] == expected
    assert await inr.balance() == START + AUTH + credited
    assert len(mandates.recurring_requests) == 1  # read, never asked again
    assert await inr.methods() == []  # still deleted


async def test_a_debit_never_sent_before_its_mandate_was_deleted_sends_a_payment_link_instead(
    inr: InrAutoTopup, mandates: FakeMandates, links: FakePaymentLinks
) -> None:
    setup, _ = await inr.register()
    inr.razorpay.down = True  # the intent is committed; the debit's order is never made
    await inr.enable()
    with pytest.raises(ProviderUnavailable):
        await inr.run()
    inr.razorpay.down = False
    await inr.delete(setup["payment_method_id"])

    report = await inr.reconcile()
    assert report.auto_topups_resumed == 1
    assert mandates.recurring_requests == []  # a deleted mandate is never debited
    (link,) = links.create_requests
    assert link["amount"] == AMOUNT
    (attempt,) = await inr.attempts()
    assert attempt["status"] == "requires_action"
    assert await inr.methods() == []  # deleted stays deleted, not "rejected"
