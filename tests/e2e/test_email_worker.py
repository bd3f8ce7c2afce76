"""A real `walletsvc worker` process e-mails billing contacts through a real SMTP server (aiosmtpd, with
AUTH): a committed event is dispatched, each contact gets one message, a recipient refused for now is
retried and delivered; with no SMTP_HOST the worker says so once, skips the e-mails, and still dispatches."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from pathlib import Path

import pytest

from tests.fixtures.notifications import SENDER, email_rows, tenant_with_contacts
from tests.fixtures.smtp import smtp_server
from tests.fixtures.worker_processes import wait_delivered, worker_running
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.domain.events import EventType, money
from walletsvc.services.email_messages import message_id_for
from walletsvc.services.events import record_event

SMTP_USER = "walletsvc-worker"
SMTP_PASSWORD = "e2e-smtp-Passw0rd-9f3k"


async def _commit_event(db: Database, tenant_id: str, type: EventType, payload: dict[str, object]) -> str:
    async with unit_of_work(db) as session:
        return await record_event(session, type, tenant_id, payload)


async def _wait_rows(
    db: Database, event_id: str, done: set[str], within: float = 60.0
) -> list[dict[str, object]]:
    """The event's e-mail rows once every one is in one of the `done` states (or the deadline passed)."""
    deadline = time.monotonic() + within
    while True:
        rows = await email_rows(db, event_id)
        if (rows and all(r["status"] in done for r in rows)) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)  # polling the worker's progress


# The test server has no certificate, so AUTH is allowed over plain SMTP (docs/email.md: STARTTLS).
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_worker_emails_each_contact_once_and_retries_a_temporary_refusal(
    db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    busy, ok = f"busy-{tag}@acme.example", f"ok-{tag}@acme.example"
    tenant_id = await tenant_with_contacts(db, [busy, ok], name="Acme Calls")
    with smtp_server(username=SMTP_USER, password=SMTP_PASSWORD) as sink:
        sink.refuse_for[busy] = deque(["451 4.2.0 Mailbox busy, try again later"])  # once
        for name, value in {
            "SMTP_HOST": sink.host,
            "SMTP_PORT": str(sink.port),
            "SMTP_USERNAME": SMTP_USER,
            "SMTP_PASSWORD": SMTP_PASSWORD,
            "SMTP_FROM": SENDER,
            "SMTP_STARTTLS": "false",
        }.items():
            monkeypatch.setenv(name, value)  # the worker's environment (cli_env starts from this one)
        with worker_running(database_url, tmp_path, "mailer") as worker:
            committed = time.monotonic()
            event_id = await _commit_event(
                db,
                tenant_id,
                EventType.WALLET_LOW_BALANCE,
                {"available": money(4_500, "INR"), "threshold": money(10_000, "INR")},
            )
            [first] = await sink.wait_for(1, to=[ok])
            took = time.monotonic() - committed
            # The busy mailbox is refused once, then accepted on the retry (pgqueuer's backoff: 1 s).
            [second] = await sink.wait_for(1, to=[busy])
            rows = await _wait_rows(db, event_id, {"sent"})
            output = worker.output() + (tmp_path / "mailer.out").read_text(errors="replace")
        done = await wait_delivered(db, [event_id])

    assert done == {event_id: ("dispatched", 1)}
    assert len(sink.messages(to=[ok, busy])) == 2  # one each: the retry sent only the refused one
    assert first.rcpt_tos == [ok]
    assert first.message["Subject"] == "Low balance on Acme Calls: Rs 45.00 available"
    assert "Rs 100.00" in first.part("plain")
    assert "Rs 45.00" in first.part("html")
    assert first.message["Message-ID"] == message_id_for(event_id, ok, SENDER)
    assert second.message["Message-ID"] == message_id_for(event_id, busy, SENDER)
    by_recipient = {r["recipient"]: r for r in rows}
    assert (by_recipient[ok]["status"], by_recipient[ok]["attempts"]) == ("sent", 1)
    assert (by_recipient[busy]["status"], by_recipient[busy]["attempts"]) == ("sent", 2)
    assert "451 4.2.0 Mailbox busy" in str(by_recipient[busy]["last_error"])  # kept: what it took
    assert [a for a in sink.rcpt_answers if a.startswith("451")] == [
        "451 4.2.0 Mailbox busy, try again later"
    ]
    assert any(login == f"{SMTP_USER}:ok" for login in sink.logins)
    assert SMTP_PASSWORD not in output
    assert "e-mail notifications off" not in output
    print(f"commit to first e-mail accepted: {took:.2f} s")  # a figure for the report


async def test_without_smtp_the_worker_says_so_once_and_still_dispatches(
    db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMTP_HOST", raising=False)
    contact = f"nobody-{uuid.uuid4().hex[:8]}@acme.example"
    tenant_id = await tenant_with_contacts(db, [contact])
    with worker_running(database_url, tmp_path, "quiet"):
        event_id = await _commit_event(
            db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")}
        )
        done = await wait_delivered(db, [event_id])
        rows = await _wait_rows(db, event_id, {"skipped"})
    log = (tmp_path / "quiet.out").read_text(errors="replace")
    assert log.count("e-mail notifications off: SMTP_HOST is not set") == 1
    assert done == {event_id: ("dispatched", 1)}
    assert [(r["recipient"], r["status"], r["attempts"]) for r in rows] == [(contact, "skipped", 0)]
