"""DESIGN.md's five routing rules, one by one, and their order."""

from __future__ import annotations

import pytest

from walletsvc.domain.routing import choose_provider
from walletsvc.domain.tenants import ProviderName

STRIPE, RAZORPAY = ProviderName.STRIPE, ProviderName.RAZORPAY


def test_rule_1_an_admin_override_wins_over_everything() -> None:
    route = choose_provider(
        currency="INR",
        country="IND",
        data_residency_region="ap-south-1",
        tenant_setting=RAZORPAY,
        override=STRIPE,
    )
    assert (route.provider, route.rule) == (STRIPE, "admin override")


def test_rule_2_the_tenant_setting_wins_over_geography() -> None:
    assert choose_provider(currency="INR", country="IND", tenant_setting=STRIPE).provider is STRIPE
    assert choose_provider(currency="USD", country="USA", tenant_setting=RAZORPAY).provider is RAZORPAY


def test_rule_3_inr_goes_to_razorpay() -> None:
    route = choose_provider(currency="INR", country="USA")
    assert (route.provider, route.rule) == (RAZORPAY, "INR or India")


def test_rule_3_india_goes_to_razorpay_whatever_the_currency() -> None:
    assert choose_provider(currency="USD", country="IND").provider is RAZORPAY


def test_rule_4_ap_south_residency_goes_to_razorpay() -> None:
    route = choose_provider(currency="USD", country="SGP", data_residency_region="ap-south-2")
    assert (route.provider, route.rule) == (RAZORPAY, "ap-south data residency")


@pytest.mark.parametrize(
    ("region", "provider"),
    [
        ("ap-south", RAZORPAY),
        ("ap-south-1", RAZORPAY),  # Mumbai
        ("ap-south-2", RAZORPAY),  # Hyderabad
        ("ap-southeast-1", STRIPE),  # Singapore: not India
        ("ap-southeast-2", STRIPE),  # Sydney
        ("ap-south1", STRIPE),
        ("eu-ap-south-1", STRIPE),
        ("us-east-1", STRIPE),
        ("", STRIPE),
    ],
)
def test_rule_4_takes_ap_south_and_its_numbered_regions_only(region: str, provider: ProviderName) -> None:
    assert choose_provider(currency="USD", country="SGP", data_residency_region=region).provider is provider


def test_rule_5_everything_else_goes_to_stripe() -> None:
    route = choose_provider(currency="EUR", country="DEU")
    assert (route.provider, route.rule) == (STRIPE, "default")
