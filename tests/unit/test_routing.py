"""DESIGN.md's five routing rules, one by one, and their order."""

from __future__ import annotations

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


def test_rule_4_is_a_prefix_match_as_design_md_words_it() -> None:
    # DESIGN.md says "starting with ap-south", which also takes in ap-southeast-*; kept literal on purpose.
    def region(name: str) -> ProviderName:
        return choose_provider(currency="USD", country="SGP", data_residency_region=name).provider

    assert region("ap-southeast-1") is RAZORPAY
    assert region("eu-ap-south") is STRIPE
    assert region("us-east-1") is STRIPE


def test_rule_5_everything_else_goes_to_stripe() -> None:
    route = choose_provider(currency="EUR", country="DEU")
    assert (route.provider, route.rule) == (STRIPE, "default")
