"""Provider signatures, verified with the standard library: Stripe webhooks, Razorpay webhooks and
Razorpay's checkout handler signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from walletsvc.domain.errors import InvalidSignature

STRIPE_TOLERANCE_SECONDS = 300
# A header is attacker-controlled input: bound it before parsing. Stripe sends one `t=` and one `v1=` per
# active secret (a few while rolling), far below these.
_MAX_STRIPE_HEADER = 4096
_MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; int() of 5,000 digits raises instead
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _is_sha256_hex(value: str) -> bool:
    # Also what hmac.compare_digest needs: it raises TypeError for a str that is not ASCII.
    return _SHA256_HEX.fullmatch(value) is not None


def verify_stripe_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: int,
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
) -> int:
    """Check a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=<hex>...]`); return its timestamp.

    Any v1 signature may match any of our secrets (Stripe sends one per active secret while a secret is
    being rolled). A timestamp more than `tolerance` seconds old, or in the future, is refused: a
    captured delivery cannot be replayed later.
    """
    usable = [s for s in secrets if s]
    if not usable:
        raise InvalidSignature("no webhook secret is configured, so no signature can be trusted")
    if not header:
        raise InvalidSignature("the Stripe-Signature header is missing")
    if len(header) > _MAX_STRIPE_HEADER:
        raise InvalidSignature("the Stripe-Signature header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            # isdigit() alone lets through "²" and other digits int() refuses.
            if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
                raise InvalidSignature("the Stripe-Signature timestamp is not a Unix time")
            timestamp = int(value)
        elif key == "v1" and _is_sha256_hex(value):
            signatures.append(value)  # anything else in v1 cannot be our HMAC: ignored like other schemes
    if timestamp is None or not signatures:
        raise InvalidSignature("the Stripe-Signature header has no timestamp or no v1 signature")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("the Stripe-Signature timestamp is outside the tolerance")
    signed = f"{timestamp}.".encode() + payload
    for secret in usable:
        expected = _hmac_hex(secret, signed)
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return timestamp
    raise InvalidSignature("no Stripe signature matches")


def verify_razorpay_webhook(payload: bytes, signature: str | None, secret: str) -> None:
    """`X-Razorpay-Signature`: HMAC-SHA256 of the raw body with the webhook secret, hex."""
    if not secret:
        raise InvalidSignature("no webhook secret is configured, so no signature can be trusted")
    if not signature or not _is_sha256_hex(signature):
        raise InvalidSignature("the Razorpay webhook signature is not a hex SHA-256 HMAC")
    if not hmac.compare_digest(_hmac_hex(secret, payload), signature):
        raise InvalidSignature("the Razorpay webhook signature does not match")


def verify_razorpay_payment(order_id: str, payment_id: str, signature: str, key_secret: str) -> None:
    """The checkout handler's `razorpay_signature`: HMAC-SHA256 of `order_id|payment_id` with the key secret."""
    if not key_secret:
        raise InvalidSignature("Razorpay is not configured, so no payment signature can be trusted")
    if not signature or not _is_sha256_hex(signature):
        raise InvalidSignature("the Razorpay payment signature is not a hex SHA-256 HMAC")
    expected = _hmac_hex(key_secret, f"{order_id}|{payment_id}".encode())
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignature("the Razorpay payment signature does not match")
