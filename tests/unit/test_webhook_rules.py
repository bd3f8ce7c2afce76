"""The pure webhook rules: which addresses a delivery may reach, which URLs an endpoint may have, which
events it wants, and the retry schedule with its jitter."""

from __future__ import annotations

import random

import pytest

from walletsvc.domain.webhooks import (
    blocked_address,
    blocked_resolution,
    parse_endpoint_url,
    parse_schedule,
    retry_delay,
    wants,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.7",
        "::1",
        "10.1.2.3",
        "172.31.255.255",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound to
        "::",
        "224.0.0.251",
        "ff02::1",
        "fe80::1%eth0",
        "fd12:3456::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "240.0.0.1",
        "198.18.0.1",
        "192.0.0.8",
        "not-an-ip",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_not(address: str) -> None:
    assert blocked_address(address) is None


def test_one_blocked_address_among_the_answers_blocks_the_name() -> None:
    assert blocked_resolution(["93.184.215.14", "10.0.0.1"]) is not None
    assert blocked_resolution([]) == "does not resolve to any address"
    assert blocked_resolution(["93.184.215.14"]) is None


def test_https_public_urls_are_allowed_and_http_only_with_private_urls() -> None:
    parsed = parse_endpoint_url("https://93.184.215.14:8443/hooks?x=1", allow_private=False)
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "93.184.215.14", 8443)
    assert parse_endpoint_url("https://hooks.example.com/in", allow_private=False).port == 443
    with pytest.raises(ValueError, match="https"):
        parse_endpoint_url("http://hooks.example.com/in", allow_private=False)
    assert parse_endpoint_url("http://127.0.0.1:8080/in", allow_private=True).port == 8080


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@hooks.example.com/",
        "https://hooks.example.com/#x",
        "ftp://hooks.example.com/",
        "https://",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com/ a",
        "https://10.0.0.1/",
        "https://[::ffff:10.0.0.1]/",
        "https://localhost./",
        "https://017700000001/",
        "https://0x7f000001/",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        parse_endpoint_url(url, allow_private=False)


def test_an_endpoint_wants_its_types_and_its_tenant() -> None:
    assert wants(event_type="topup.succeeded", event_tenant="t1", endpoint_types=(), endpoint_tenant=None)
    assert wants(
        event_type="topup.succeeded",
        event_tenant="t1",
        endpoint_types=("topup.succeeded",),
        endpoint_tenant="t1",
    )
    assert not wants(
        event_type="topup.failed",
        event_tenant="t1",
        endpoint_types=("topup.succeeded",),
        endpoint_tenant=None,
    )
    assert not wants(event_type="topup.succeeded", event_tenant="t2", endpoint_types=(), endpoint_tenant="t1")


def test_the_retry_schedule_is_jittered_and_ends() -> None:
    schedule = parse_schedule("5, 300,1800")
    assert schedule == (5.0, 300.0, 1800.0)
    rng = random.Random(7)
    delays = [retry_delay(schedule, 2, rng=rng) for _ in range(200)]
    assert all(d is not None and 240 <= d <= 360 for d in delays)
    assert len({round(d or 0) for d in delays}) > 20  # spread, not one instant
    assert retry_delay(schedule, 3) is not None
    assert retry_delay(schedule, 4) is None
    with pytest.raises(ValueError, match="seconds"):
        parse_schedule("5,-1")


def test_the_default_schedule_spans_about_three_days() -> None:
    from walletsvc.config import Settings

    total = sum(parse_schedule(Settings.model_fields["webhook_retry_schedule_seconds"].default))
    assert 2.5 * 86400 < total < 3.5 * 86400
