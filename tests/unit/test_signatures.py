from __future__ import annotations

import hashlib
import hmac

import pytest

from walletsvc.domain.errors import InvalidSignature
from walletsvc.domain.signatures import (
    verify_razorpay_payment,
    verify_razorpay_webhook,
    verify_stripe_signature,
)

SECRET = "whsec_unit"
NOW = 1_800_000_000
BODY = b'{"id":"evt_1","type":"checkout.session.completed"}'


def sign(body: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_a_valid_stripe_signature_returns_its_timestamp() -> None:
    header = f"t={NOW},v1={sign(BODY, SECRET, NOW)}"
    assert verify_stripe_signature(BODY, header, [SECRET], now=NOW + 10) == NOW


def test_any_v1_may_match_during_secret_rotation() -> None:
    header = f"t={NOW},v1={sign(BODY, 'whsec_old', NOW)},v1={sign(BODY, SECRET, NOW)}"
    assert verify_stripe_signature(BODY, header, [SECRET], now=NOW) == NOW


def test_our_side_may_hold_two_secrets_while_rolling() -> None:
    header = f"t={NOW},v1={sign(BODY, 'whsec_new', NOW)}"
    assert verify_stripe_signature(BODY, header, [SECRET, "whsec_new"], now=NOW) == NOW


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"v1={sign(BODY, SECRET, NOW)}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t={NOW},v0={sign(BODY, SECRET, NOW)}",  # only the legacy scheme
        f"t={NOW},v1={sign(BODY, 'whsec_wrong', NOW)}",
        f"t={NOW},v1={sign(BODY + b' ', SECRET, NOW)}",
        f"t=abc,v1={sign(BODY, SECRET, NOW)}",
    ],
)
def test_bad_stripe_headers_are_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(BODY, header, [SECRET], now=NOW)


def test_a_tampered_body_is_refused() -> None:
    header = f"t={NOW},v1={sign(BODY, SECRET, NOW)}"
    with pytest.raises(InvalidSignature):
        verify_stripe_signature(BODY.replace(b"evt_1", b"evt_2"), header, [SECRET], now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400, -86_400])
def test_old_and_future_timestamps_are_refused(skew: int) -> None:
    t = NOW - skew
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_stripe_signature(BODY, f"t={t},v1={sign(BODY, SECRET, t)}", [SECRET], now=NOW)


def test_timestamps_within_tolerance_pass() -> None:
    for t in (NOW - 300, NOW + 300):
        assert verify_stripe_signature(BODY, f"t={t},v1={sign(BODY, SECRET, t)}", [SECRET], now=NOW) == t


def test_no_stripe_secret_refuses_even_an_empty_key_signature() -> None:
    header = f"t={NOW},v1={sign(BODY, '', NOW)}"
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_stripe_signature(BODY, header, [], now=NOW)
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_stripe_signature(BODY, header, [""], now=NOW)


def test_razorpay_webhook_signature_is_an_hmac_of_the_raw_body() -> None:
    good = hmac.new(b"rzp_whsec", BODY, hashlib.sha256).hexdigest()
    verify_razorpay_webhook(BODY, good, "rzp_whsec")
    with pytest.raises(InvalidSignature):
        verify_razorpay_webhook(BODY + b"\n", good, "rzp_whsec")
    with pytest.raises(InvalidSignature):
        verify_razorpay_webhook(BODY, None, "rzp_whsec")
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_razorpay_webhook(BODY, hmac.new(b"", BODY, hashlib.sha256).hexdigest(), "")


def test_razorpay_payment_signature_is_an_hmac_of_order_and_payment() -> None:
    good = hmac.new(b"key_secret", b"order_A|pay_B", hashlib.sha256).hexdigest()
    verify_razorpay_payment("order_A", "pay_B", good, "key_secret")
    with pytest.raises(InvalidSignature):
        verify_razorpay_payment("order_A", "pay_C", good, "key_secret")
    with pytest.raises(InvalidSignature):
        verify_razorpay_payment("order_A", "pay_B", good, "other_secret")
    with pytest.raises(InvalidSignature):
        verify_razorpay_payment("order_A", "pay_B", good, "")
