"""Telephony charges, the one code path: who may charge, what a usage record is, the charge and its answer.

`POST /v1/usage` has two entry points: the documented FastAPI route (api/routers/usage.py) and the lean
ASGI adapter (api/fast_usage.py), which answers a request without an Idempotency-Key without FastAPI's
routing and dependency work. Both call these functions, and both answer errors through api/errors.py, so
the two answer alike by construction. `POST /v1/usage/batch` uses the same pieces record by record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.responses import Response

from walletsvc.api.errors import refusal_document, validation_document
from walletsvc.api.schemas.charging import UsageIn, charge_document
from walletsvc.db.engine import Database
from walletsvc.db.faults import once_more_if_lost
from walletsvc.domain.access import Principal, Scope
from walletsvc.domain.errors import Unauthorized, UsageOwed, WalletError
from walletsvc.services.auth import Authenticator
from walletsvc.services.charging import ChargeOutcome, ChargeWriter, UsageRecord

JSON = "application/json"
# What FastAPI answers for a required body that is absent.
_MISSING_BODY = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
_RECORDS = TypeAdapter(list[UsageIn])  # a batch's records, when all are well formed


async def usage_caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who is charging: a bearer credential (as deps.bearer_scheme reads it) with `usage:write`.

    A JWT, or an API key verified in the last API_KEY_CACHE_SECONDS, needs no database. Otherwise the
    key is read in a session of its own, ended before the charge waits for the writer: a burst of
    requests larger than the pool must not hold every connection while the writer cannot get one."""
    if credentials is None:
        raise Unauthorized("send `Authorization: Bearer <token or API key>`")
    authenticator: Authenticator = request.app.state.authenticator
    token = credentials.credentials
    principal = authenticator.known(token)
    if principal is None:
        db: Database = request.app.state.db

        async def read_key() -> Principal:
            async with db.sessionmaker() as session:
                return await authenticator.authenticate(session, token)

        # Only reads: safe to run again on a fresh connection if this one was lost.
        principal = await once_more_if_lost(read_key)
    principal.require(Scope.USAGE_WRITE)
    return principal


def usage_body(raw: bytes, document: Any) -> UsageIn:
    """`POST /v1/usage`'s body: absent is FastAPI's "Field required", anything else is usage_of."""
    if not raw:
        raise RequestValidationError([_MISSING_BODY])
    return usage_of(document)


def usage_of(document: Any, loc: tuple[str | int, ...] = ("body",)) -> UsageIn:
    """A usage record validated as FastAPI validates a route's body, its errors located at `loc`: one
    validation for both entry points of `POST /v1/usage` and for each record of a batch."""
    try:
        return UsageIn.model_validate(document, from_attributes=True)  # from_attributes: as FastAPI does
    except ValidationError as exc:
        errors = [{**err, "loc": (*loc, *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _usages_of(documents: Sequence[Any]) -> Sequence[UsageIn | RequestValidationError]:
    """Each record of a batch validated by usage_of, or its errors: all of them in one validation when
    all are well formed (a call per record cost more than its validation), else one by one, so that
    each malformed record's errors are its own, located in it."""
    try:
        return _RECORDS.validate_python(documents, from_attributes=True)
    except ValidationError:
        pass
    usages: list[UsageIn | RequestValidationError] = []
    for index, document in enumerate(documents):
        try:
            usages.append(usage_of(document, ("body", "records", index)))
        except RequestValidationError as exc:
            usages.append(exc)
    return usages


def usage_record(usage: UsageIn, caller: Principal) -> UsageRecord:
    return UsageRecord(
        tenant_id=caller.tenant_for(usage.tenant_id),
        kind=usage.kind,
        reference_id=usage.reference_id,
        duration_seconds=usage.duration_seconds,
        quantity=usage.quantity,
        actor=caller.actor,
    )


async def charge(writer: ChargeWriter, usage: UsageIn, caller: Principal) -> Response:
    """Charge one record: 201 with the charge, 200 when it is the first charge replayed, 402 (raised,
    UsageOwed) when some of it is owed."""
    outcome = await writer.charge(usage_record(usage, caller))
    _refuse_if_owed(outcome)
    return Response(
        to_json(charge_document(outcome.charge, replayed=outcome.replayed)),
        status_code=200 if outcome.replayed else 201,
        media_type=JSON,
    )


async def charge_batch(
    request: Request, writer: ChargeWriter, documents: Sequence[Any], caller: Principal
) -> Response:
    """Charge each record on its own: the answer lists, in order, what each record alone would have
    answered (its status, and its charge, its problem, or both for a 402). A malformed record is a 422 in
    its place, its errors located in it (`body.records.<index>...`); the others are charged."""
    results: list[dict[str, Any]] = [{}] * len(documents)
    records: list[UsageRecord] = []
    placed: list[int] = []
    for index, usage in enumerate(_usages_of(documents)):
        if isinstance(usage, RequestValidationError):
            results[index] = _refused(index, validation_document(usage, request))
            continue
        try:
            records.append(usage_record(usage, caller))
        except WalletError as exc:  # another tenant's record, or no tenant named by a platform key
            results[index] = _refused(index, refusal_document(exc, request))
            continue
        placed.append(index)
    answers = await writer.charge_many(records)
    for index, answer in zip(placed, answers, strict=True):
        if isinstance(answer, WalletError):
            results[index] = _refused(index, refusal_document(answer, request))
            continue
        charged = charge_document(answer.charge, replayed=answer.replayed)
        owed = _owed(answer)
        if owed is not None:
            results[index] = {**_refused(index, refusal_document(owed, request)), "charge": charged}
        else:
            status = 200 if answer.replayed else 201
            results[index] = {"index": index, "status": status, "charge": charged, "problem": None}
    return Response(to_json({"results": results}), media_type=JSON)


def _refused(index: int, problem: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "status": problem["status"], "charge": None, "problem": problem}


def _owed(outcome: ChargeOutcome) -> UsageOwed | None:
    charge = outcome.charge
    if charge.owed <= 0:
        return None
    return UsageOwed(
        charge_id=charge.id,
        amount=charge.amount.amount,
        charged=charge.charged,
        owed=charge.owed,
        available=outcome.available_after,
        currency=charge.amount.currency,
    )


def _refuse_if_owed(outcome: ChargeOutcome) -> None:
    owed = _owed(outcome)
    if owed is not None:
        raise owed
