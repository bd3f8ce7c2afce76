"""Tax on documents: one rounding rule, and the Indian GST split.

The rule: tax is computed once per document, on its total (not per line), and rounded half away from zero
to the minor unit (`money.round_minor`). Inclusive tax is taken out of the gross, `tax = round(gross * r /
(100 + r))`, and the net is what is left, so `net + tax == gross` exactly; exclusive tax is added to the
net, `tax = round(net * r / 100)`. Under Indian GST a supply within the seller's state carries CGST and
SGST, each half the rate, and the two halves add up to the tax exactly (CGST takes the odd paisa); any
other supply carries IGST at the full rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from walletsvc.domain.money import round_minor

# GST state codes (the first two digits of a GSTIN) by ISO 3166-2:IN subdivision code.
GST_STATE_CODES: dict[str, str] = {
    "JK": "01", "HP": "02", "PB": "03", "CH": "04", "UK": "05", "UT": "05", "HR": "06", "DL": "07",
    "RJ": "08", "UP": "09", "BR": "10", "SK": "11", "AR": "12", "NL": "13", "MN": "14", "MZ": "15",
    "TR": "16", "ML": "17", "AS": "18", "WB": "19", "JH": "20", "OD": "21", "OR": "21", "CG": "22",
    "CT": "22", "MP": "23", "GJ": "24", "DH": "26", "DN": "26", "DD": "26", "MH": "27", "KA": "29",
    "GA": "30", "LD": "31", "KL": "32", "TN": "33", "PY": "34", "AN": "35", "TG": "36", "TS": "36",
    "AP": "37", "LA": "38",
}  # fmt: skip
KNOWN_GST_CODES = frozenset(GST_STATE_CODES.values()) | {"97", "99"}  # 97 other territory, 99 centre
INDIA = "IND"


def gst_state_code(state: str | None) -> str | None:
    """An Indian state as its GST code: `KA`, `IN-KA` and `29` are all `29`; None when not one."""
    if not state:
        return None
    code = state.strip().upper().removeprefix("IN-")
    if code.isdigit() and len(code) == 2:
        return code if code in KNOWN_GST_CODES else None
    return GST_STATE_CODES.get(code)


@dataclass(frozen=True, slots=True)
class TaxRule:
    """The seller's tax setting, copied onto each document when it is issued."""

    rate_percent: Decimal = Decimal(0)
    inclusive: bool = True
    label: str = "Tax"
    indian_gst: bool = False
    seller_country: str | None = None
    seller_state: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rate_percent, Decimal) or not (Decimal(0) <= self.rate_percent < 100):
            raise ValueError("a tax rate is a Decimal percentage from 0 up to (not including) 100")

    @property
    def taxed(self) -> bool:
        return self.rate_percent > 0


@dataclass(frozen=True, slots=True)
class TaxLine:
    label: str  # "GST", "CGST", "SGST", "IGST", "VAT"
    rate_percent: Decimal
    amount: int  # minor units


@dataclass(frozen=True, slots=True)
class TaxBreakdown:
    net: int
    taxes: tuple[TaxLine, ...]
    gross: int

    @property
    def tax(self) -> int:
        return sum(t.amount for t in self.taxes)


def tax_amount(amount: int, rate_percent: Decimal, *, inclusive: bool) -> int:
    """The tax in `amount` (inclusive) or on it (exclusive), by the one rounding rule."""
    if rate_percent == 0:
        return 0
    if inclusive:
        return round_minor(Decimal(amount) * rate_percent / (Decimal(100) + rate_percent))
    return round_minor(Decimal(amount) * rate_percent / Decimal(100))


def split_evenly(tax: int) -> tuple[int, int]:
    """CGST and SGST: two halves that add up to `tax` exactly; the first takes the odd minor unit."""
    second = abs(tax) // 2 * (1 if tax >= 0 else -1)
    return tax - second, second


def same_state_supply(rule: TaxRule, buyer_country: str | None, buyer_state: str | None) -> bool:
    """Seller and buyer in the same Indian state (an unknown buyer state is taken as another state)."""
    seller = gst_state_code(rule.seller_state)
    return (
        rule.seller_country == INDIA
        and buyer_country == INDIA
        and seller is not None
        and seller == gst_state_code(buyer_state)
    )


def break_down(
    amount: int, rule: TaxRule, *, buyer_country: str | None, buyer_state: str | None
) -> TaxBreakdown:
    """`amount` is the gross with inclusive tax, else the net. Answers net, tax lines and gross, which add
    up exactly: net + sum(taxes) == gross."""
    if not rule.taxed:
        return TaxBreakdown(net=amount, taxes=(), gross=amount)
    tax = tax_amount(amount, rule.rate_percent, inclusive=rule.inclusive)
    net, gross = (amount - tax, amount) if rule.inclusive else (amount, amount + tax)
    if not rule.indian_gst:
        return TaxBreakdown(net=net, taxes=(TaxLine(rule.label, rule.rate_percent, tax),), gross=gross)
    if same_state_supply(rule, buyer_country, buyer_state):
        cgst, sgst = split_evenly(tax)
        half = rule.rate_percent / 2
        return TaxBreakdown(
            net=net, taxes=(TaxLine("CGST", half, cgst), TaxLine("SGST", half, sgst)), gross=gross
        )
    return TaxBreakdown(net=net, taxes=(TaxLine("IGST", rule.rate_percent, tax),), gross=gross)
