"""History: the ledger newest first, its filters and cursors, the streamed CSV, and the admin view."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.problems import assert_problem
from tests.fixtures.routes import cursor_of
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.db.engine import Database
from walletsvc.services.adjustments import adjust_balance

CSV_HEADER = [
    "id",
    "created_at",
    "type",
    "amount",
    "currency",
    "amount_display",
    "balance_before",
    "balance_after",
    "counter_account",
    "reference_type",
    "reference_id",
    "description",
    "actor",
]


async def adjust(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    tenant_id: str,
    amount: int,
    reason: str = "test",
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments",
        json={"amount": amount, "reason": reason},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    row: dict[str, Any] = response.json()["transaction"]
    return row


async def tenant_with_rows(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], count: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tenant with `count` adjustments; the rows oldest first."""
    tenant = await create_tenant(currency="INR")
    rows = [await adjust(client, admin_headers, tenant["id"], 100 + i, f"row {i}") for i in range(count)]
    return tenant, rows


async def get_page(
    client: httpx.AsyncClient, headers: dict[str, str], path: str = "/v1/transactions", **params: Any
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"data", "next_cursor"}
    return page


async def walk(
    client: httpx.AsyncClient, headers: dict[str, str], path: str = "/v1/transactions", **params: Any
) -> list[dict[str, Any]]:
    """Every row behind the cursor chain, checking that each page but the last is full."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    limit = params.get("limit", 50)
    for _ in range(10_000):
        page = await get_page(client, headers, path, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= limit
        rows.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
        assert len(page["data"]) == limit
    raise AssertionError("the cursor chain never ended")


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [int(r["id"]) for r in rows]


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == CSV_HEADER
    return [dict(zip(header, line, strict=True)) for line in reader]


async def export(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, str]]:
    response = await client.get("/v1/transactions/export.csv", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return parse_csv(response.text)


async def test_history_is_newest_first(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 5)
    page = await get_page(client, member_headers(tenant["id"]))
    assert page["next_cursor"] is None
    assert page["data"] == list(reversed(rows))
    assert ids(page["data"]) == sorted(ids(page["data"]), reverse=True)
    stamps = [datetime.fromisoformat(r["created_at"]) for r in page["data"]]
    assert stamps == sorted(stamps, reverse=True)
    assert [r["seq"] for r in page["data"]] == [5, 4, 3, 2, 1]


async def test_history_row_has_every_documented_field(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, _ = await tenant_with_rows(client, create_tenant, admin_headers, 1)
    row = (await get_page(client, owner_headers(tenant["id"])))["data"][0]
    assert {
        "id",
        "tenant_id",
        "seq",
        "type",
        "amount",
        "balance_before",
        "balance_after",
        "counter_account",
        "reference",
        "description",
        "actor",
        "created_at",
    } <= set(row)
    assert row["amount"] == {"amount": 100, "currency": "INR"}
    assert set(row["reference"]) == {"type", "id"}


async def test_history_of_a_new_tenant_is_empty(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    assert await get_page(client, member_headers(tenant["id"])) == {"data": [], "next_cursor": None}


async def test_type_filter(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 3)
    headers = member_headers(tenant["id"])
    adjustments = await get_page(client, headers, type="adjustment")
    assert ids(adjustments["data"]) == ids(list(reversed(rows)))
    for other in ("topup", "usage_charge", "bonus", "plan_fee", "usage_refund", "topup_refund"):
        assert (await get_page(client, headers, type=other))["data"] == []


@pytest.mark.parametrize("value", ["nope", "ADJUSTMENT", "", "adjustment,topup"])
async def test_unknown_type_filter_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, value: str
) -> None:
    tenant = await create_tenant()
    response = await client.get(
        "/v1/transactions", params={"type": value}, headers=member_headers(tenant["id"])
    )
    assert_problem(response, 422, "VALIDATION_FAILED")


async def test_since_is_inclusive_and_until_is_exclusive(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 4)
    headers = member_headers(tenant["id"])
    r0, r1, r2, r3 = rows
    assert len({r["created_at"] for r in rows}) == 4, "each adjustment is its own transaction and time"

    since = await get_page(client, headers, since=r1["created_at"])
    assert ids(since["data"]) == ids([r3, r2, r1])
    until = await get_page(client, headers, until=r1["created_at"])
    assert ids(until["data"]) == ids([r0])
    between = await get_page(client, headers, since=r1["created_at"], until=r3["created_at"])
    assert ids(between["data"]) == ids([r2, r1])


async def test_time_without_an_offset_is_taken_as_utc(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 3)
    headers = member_headers(tenant["id"])
    moment = datetime.fromisoformat(rows[1]["created_at"])
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    in_kolkata = moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    in_new_york = moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    expected = ids([rows[2], rows[1]])
    for since in (naive_utc, in_kolkata, in_new_york, rows[1]["created_at"]):
        assert ids((await get_page(client, headers, since=since))["data"]) == expected, since


async def test_until_not_later_than_since_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    headers = member_headers(tenant["id"])
    now = datetime.now(UTC)
    for since, until in ((now, now), (now, now - timedelta(seconds=1)), (now, now - timedelta(days=400))):
        params = {"since": since.isoformat(), "until": until.isoformat()}
        for path in ("/v1/transactions", "/v1/transactions/export.csv"):
            problem = assert_problem(
                await client.get(path, params=params, headers=headers), 422, "VALIDATION_FAILED"
            )
            assert "until" in problem["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "last tuesday"},
        {"until": "2024-13-01T00:00:00Z"},
        {"since": "0001-01-01T00:00:00+05:00"},
        {"until": "9999-12-31T23:59:59-05:00"},
    ],
)
async def test_unreadable_or_impossible_times_are_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, params: dict[str, str]
) -> None:
    tenant = await create_tenant()
    for path in ("/v1/transactions", "/v1/transactions/export.csv"):
        response = await client.get(path, params=params, headers=member_headers(tenant["id"]))
        assert_problem(response, 422, "VALIDATION_FAILED")


async def test_reference_id_filter_finds_the_one_row(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 4)
    headers = member_headers(tenant["id"])
    wanted = rows[2]
    page = await get_page(client, headers, reference_id=wanted["reference"]["id"])
    assert page["data"] == [wanted]
    assert (await get_page(client, headers, reference_id="adj_does_not_exist"))["data"] == []
    assert (await get_page(client, headers, reference_id="a" * 200))["data"] == []
    too_long = await client.get("/v1/transactions", params={"reference_id": "a" * 201}, headers=headers)
    assert_problem(too_long, 422, "VALIDATION_FAILED")


async def test_cursor_pagination_walks_every_row_once_newest_first(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 11)
    headers = member_headers(tenant["id"])
    pages = []
    cursor = None
    while True:
        page = await get_page(client, headers, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    walked = [row for p in pages for row in p]
    assert len(set(ids(walked))) == 11
    assert ids(walked) == sorted(ids(walked), reverse=True)
    assert all(a > b for a, b in zip(ids(walked), ids(walked)[1:], strict=False))
    assert walked == list(reversed(rows))
    assert walked == (await get_page(client, headers, limit=50))["data"]


async def test_exactly_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, _ = await tenant_with_rows(client, create_tenant, admin_headers, 4)
    headers = member_headers(tenant["id"])
    first = await get_page(client, headers, limit=2)
    second = await get_page(client, headers, limit=2, cursor=first["next_cursor"])
    assert len(second["data"]) == 2
    assert second["next_cursor"] is None
    whole = await get_page(client, headers, limit=4)
    assert whole["next_cursor"] is None


async def test_cursor_keeps_the_filters(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 9)
    headers = member_headers(tenant["id"])
    since, until = rows[2]["created_at"], rows[8]["created_at"]
    walked = await walk(client, headers, limit=2, since=since, until=until, type="adjustment")
    assert ids(walked) == ids(list(reversed(rows[2:8])))


async def test_rows_written_after_the_first_page_do_not_shift_the_next_pages(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 4)
    headers = member_headers(tenant["id"])
    first = await get_page(client, headers, limit=2)
    await adjust(client, admin_headers, tenant["id"], 5, "late arrival")
    second = await get_page(client, headers, limit=2, cursor=first["next_cursor"])
    assert ids(first["data"] + second["data"]) == ids(list(reversed(rows)))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "",
        "=",
        cursor_of("str:t-1"),
        cursor_of("int:"),
        cursor_of("int:-1"),
        cursor_of("int:12abc"),
        cursor_of("int:²"),
        cursor_of("int:99999999999999999999999"),
        cursor_of("int:9223372036854775808"),
        "aW50OjE\x00",
    ],
)
async def test_bad_cursor_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, cursor: str
) -> None:
    tenant = await create_tenant()
    response = await client.get(
        "/v1/transactions", params={"cursor": cursor}, headers=member_headers(tenant["id"])
    )
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("limit", ["0", "-1", "501", "1000000", "ten", "2.5"])
async def test_limit_out_of_bounds_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], limit: str
) -> None:
    tenant = await create_tenant()
    headers = member_headers(tenant["id"])
    assert_problem(
        await client.get("/v1/transactions", params={"limit": limit}, headers=headers),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await client.get("/v1/admin/transactions", params={"limit": limit}, headers=admin_headers),
        422,
        "VALIDATION_FAILED",
    )


async def test_limit_bounds_are_inclusive(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, _ = await tenant_with_rows(client, create_tenant, admin_headers, 2)
    headers = member_headers(tenant["id"])
    assert len((await get_page(client, headers, limit=1))["data"]) == 1
    assert len((await get_page(client, headers, limit=500))["data"]) == 2
    assert len((await get_page(client, headers))["data"]) == 2


async def test_default_page_is_fifty_rows(
    client: httpx.AsyncClient, create_tenant: TenantFactory, db: Database
) -> None:
    tenant = await create_tenant()
    await seed_rows(db, tenant["id"], 51)
    page = await get_page(client, member_headers(tenant["id"]))
    assert len(page["data"]) == 50
    assert page["next_cursor"] is not None


# --- CSV -----------------------------------------------------------------------------------------------


async def test_csv_export_has_a_header_and_the_same_rows_as_the_json(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, _ = await tenant_with_rows(client, create_tenant, admin_headers, 5)
    await adjust(client, admin_headers, tenant["id"], -50, "a debit")
    headers = member_headers(tenant["id"])
    response = await client.get("/v1/transactions/export.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert tenant["id"] in response.headers["content-disposition"]
    exported = parse_csv(response.text)
    listed = (await get_page(client, headers, limit=500))["data"]
    assert [int(r["id"]) for r in exported] == ids(listed)
    for line, row in zip(exported, listed, strict=True):
        assert line["type"] == row["type"]
        assert int(line["amount"]) == row["amount"]["amount"]
        assert line["currency"] == row["amount"]["currency"]
        assert int(line["balance_before"]) == row["balance_before"]["amount"]
        assert int(line["balance_after"]) == row["balance_after"]["amount"]
        assert line["counter_account"] == row["counter_account"]
        assert line["reference_type"] == row["reference"]["type"]
        assert line["reference_id"] == row["reference"]["id"]
        assert line["description"] == row["description"]
        assert line["actor"] == row["actor"]
        assert datetime.fromisoformat(line["created_at"]) == datetime.fromisoformat(row["created_at"])
    assert exported[0]["amount_display"] == "-0.50"
    assert exported[-1]["amount_display"] == "1.00"


async def test_csv_export_applies_the_same_filters_as_the_json(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant, rows = await tenant_with_rows(client, create_tenant, admin_headers, 6)
    headers = member_headers(tenant["id"])
    for filters in (
        {"since": rows[2]["created_at"]},
        {"until": rows[3]["created_at"]},
        {"since": rows[1]["created_at"], "until": rows[4]["created_at"]},
        {"reference_id": rows[5]["reference"]["id"]},
        {"type": "adjustment"},
        {"type": "topup"},
    ):
        exported = await export(client, headers, **filters)
        listed = await walk(client, headers, limit=500, **filters)
        assert [int(r["id"]) for r in exported] == ids(listed), filters


async def test_csv_export_of_an_empty_history_is_just_the_header(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    response = await client.get("/v1/transactions/export.csv", headers=member_headers(tenant["id"]))
    assert response.status_code == 200
    assert parse_csv(response.text) == []


@pytest.mark.parametrize(
    "reason",
    ['=HYPERLINK("http://evil","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "=1+1"],
)
async def test_csv_neutralises_a_description_a_spreadsheet_would_run(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], reason: str
) -> None:
    tenant = await create_tenant()
    await adjust(client, admin_headers, tenant["id"], 100, reason)
    (line,) = await export(client, member_headers(tenant["id"]))
    assert line["description"] == "'" + reason
    # The JSON keeps the text as it was written.
    listed = (await get_page(client, member_headers(tenant["id"])))["data"]
    assert listed[0]["description"] == reason


async def test_csv_keeps_commas_quotes_and_newlines_inside_one_cell(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    reason = 'refund, per "ticket" 42\nsecond line ₹ ünïcode'
    await adjust(client, admin_headers, tenant["id"], 100, reason)
    await adjust(client, admin_headers, tenant["id"], 1, "plain")
    exported = await export(client, member_headers(tenant["id"]))
    assert [line["description"] for line in exported] == ["plain", reason]


async def test_csv_amount_display_uses_the_currency_minor_digits(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    cases = [("JPY", "JPN", -1_500, "-1500"), ("KWD", "KWT", 1_005, "1.005"), ("USD", "USA", 5, "0.05")]
    for currency, country, amount, display in cases:
        tenant = await create_tenant(currency=currency, country=country, balance=10_000)
        await adjust(client, admin_headers, tenant["id"], amount, "display")
        newest = (await export(client, member_headers(tenant["id"])))[0]
        assert newest["amount"] == str(amount)
        assert newest["currency"] == currency
        assert newest["amount_display"] == display


async def seed_rows(db: Database, tenant_id: str, count: int) -> None:
    """Many ledger rows quickly: the same service the adjustment route uses, in one transaction."""
    async with db.sessionmaker() as session:
        for i in range(count):
            await adjust_balance(session, tenant_id, 1 + i % 7, reason=f"bulk {i}", actor="user:seeder")
        await session.commit()


async def test_csv_export_streams_every_row_of_a_big_history(
    client: httpx.AsyncClient, create_tenant: TenantFactory, db: Database
) -> None:
    tenant = await create_tenant(currency="INR")
    await seed_rows(db, tenant["id"], 3_000)
    lines = 0
    seen: set[str] = set()
    async with client.stream(
        "GET", "/v1/transactions/export.csv", headers=member_headers(tenant["id"])
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        first = True
        async for line in response.aiter_lines():
            if not line:
                continue
            if first:
                assert line.split(",") == CSV_HEADER
                first = False
                continue
            lines += 1
            seen.add(line.split(",", 1)[0])
    assert lines == 3_000
    assert len(seen) == 3_000
    wallet = (await client.get("/v1/wallet", headers=member_headers(tenant["id"]))).json()
    assert wallet["balance"]["amount"] == sum(1 + i % 7 for i in range(3_000))


# --- admin view ----------------------------------------------------------------------------------------


async def test_admin_sees_every_tenant_and_can_narrow_to_one(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    a, a_rows = await tenant_with_rows(client, create_tenant, admin_headers, 3)
    b, b_rows = await tenant_with_rows(client, create_tenant, admin_headers, 2)

    everything = await get_page(client, admin_headers, "/v1/admin/transactions", limit=5)
    # Nothing else writes between these requests: the five newest rows are ours, newest first.
    assert ids(everything["data"]) == ids(list(reversed(a_rows + b_rows)))
    assert {r["tenant_id"] for r in everything["data"]} == {a["id"], b["id"]}

    only_a = await walk(client, admin_headers, "/v1/admin/transactions", tenant_id=a["id"], limit=2)
    assert ids(only_a) == ids(list(reversed(a_rows)))
    assert {r["tenant_id"] for r in only_a} == {a["id"]}
    only_b = await walk(client, admin_headers, "/v1/admin/transactions", tenant_id=b["id"])
    assert ids(only_b) == ids(list(reversed(b_rows)))


async def test_admin_history_applies_filters_across_tenants(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    _, a_rows = await tenant_with_rows(client, create_tenant, admin_headers, 2)
    _, b_rows = await tenant_with_rows(client, create_tenant, admin_headers, 2)
    since = a_rows[1]["created_at"]
    recent = await walk(client, admin_headers, "/v1/admin/transactions", since=since, limit=2)
    assert ids(recent) == ids(list(reversed([a_rows[1], *b_rows])))
    one = await get_page(
        client, admin_headers, "/v1/admin/transactions", reference_id=b_rows[0]["reference"]["id"]
    )
    assert one["data"] == [b_rows[0]]


async def test_admin_history_walks_all_pages_without_duplicates(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    await tenant_with_rows(client, create_tenant, admin_headers, 3)
    walked = await walk(client, admin_headers, "/v1/admin/transactions", limit=500)
    assert len(walked) == len(set(ids(walked)))
    assert ids(walked) == sorted(ids(walked), reverse=True)


async def test_admin_history_of_an_unknown_tenant_is_empty(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    page = await get_page(client, admin_headers, "/v1/admin/transactions", tenant_id=new_tenant_id())
    assert page == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("tenant_id", ["has space", "x" * 65, "-leading", ""])
async def test_admin_history_with_a_malformed_tenant_id_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], tenant_id: str
) -> None:
    response = await client.get(
        "/v1/admin/transactions", params={"tenant_id": tenant_id}, headers=admin_headers
    )
    assert_problem(response, 422, "VALIDATION_FAILED")
