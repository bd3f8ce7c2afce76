from __future__ import annotations

from typing import Any

import pytest

from walletsvc.config import Settings
from walletsvc.domain.errors import ProviderUnavailable
from walletsvc.gateway_config import build_gateways, key_mode_warnings
from walletsvc.providers.circuit import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_the_threshold_and_fails_fast() -> None:
    clock = Clock()
    breaker = CircuitBreaker("stripe", failure_threshold=3, reset_after=30, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()  # two failures: still closed
    breaker.record_failure()
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        breaker.before_call()


def test_the_circuit_lets_a_trial_through_after_the_pause_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("stripe", failure_threshold=1, reset_after=30, clock=clock)
    breaker.record_failure()
    clock.now += 30
    breaker.before_call()  # half-open
    breaker.record_success()
    assert not breaker.is_open
    breaker.before_call()


def test_a_failed_trial_reopens_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker("razorpay", failure_threshold=5, reset_after=30, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 31
    breaker.before_call()
    breaker.record_failure()
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("stripe", failure_threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.before_call()


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)


def test_no_credentials_means_no_gateway() -> None:
    gateways = build_gateways(settings())
    assert gateways.stripe is None
    assert gateways.razorpay is None
    assert gateways.stripe_webhook_secrets == []


def test_several_stripe_webhook_secrets_may_be_configured() -> None:
    gateways = build_gateways(settings(stripe_webhook_secret="whsec_a, whsec_b"))
    assert gateways.stripe_webhook_secrets == ["whsec_a", "whsec_b"]


def test_mixed_key_modes_are_warned_about() -> None:
    warnings = key_mode_warnings(settings(stripe_secret_key="sk_live_x", stripe_publishable_key="pk_test_y"))
    assert any("mix live and test" in w for w in warnings)


def test_live_keys_on_a_local_address_are_warned_about() -> None:
    warnings = key_mode_warnings(
        settings(stripe_secret_key="sk_live_x", public_base_url="http://127.0.0.1:8000")
    )
    assert any("looks like a test setup" in w for w in warnings)


def test_test_keys_on_a_public_https_address_are_warned_about() -> None:
    warnings = key_mode_warnings(
        settings(razorpay_key_id="rzp_test_x", public_base_url="https://billing.example.com")
    )
    assert any("looks like production" in w for w in warnings)


def test_a_consistent_setup_is_not_warned_about() -> None:
    assert (
        key_mode_warnings(settings(stripe_secret_key="sk_test_x", public_base_url="http://localhost:8000"))
        == []
    )
    assert (
        key_mode_warnings(
            settings(
                stripe_secret_key="sk_live_x",
                stripe_publishable_key="pk_live_y",
                razorpay_key_id="rzp_live_z",
                public_base_url="https://billing.example.com",
            )
        )
        == []
    )
    assert not any(
        "sk_live_x" in w
        for w in key_mode_warnings(
            settings(stripe_secret_key="sk_live_x", stripe_publishable_key="pk_test_y")
        )
    )
