"""Money as an integer count of a currency's minor unit.

A float never comes near an amount: `Money(amount=20_00, currency="INR")` is Rs 20.00.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from walletsvc.domain.errors import CurrencyMismatch, UnknownCurrency

# ISO 4217 minor-unit exponents. Every active code not listed here has 2 minor digits.
_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split())
_THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())
_FOUR_DECIMAL = frozenset(["CLF", "UYW"])
_TWO_DECIMAL = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL
    MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK
    PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG""".split()
)

CURRENCIES: frozenset[str] = _ZERO_DECIMAL | _THREE_DECIMAL | _FOUR_DECIMAL | _TWO_DECIMAL


def minor_digits(currency: str) -> int:
    """How many digits the currency's minor unit has: JPY 0, INR 2, KWD 3."""
    if currency not in CURRENCIES:
        raise UnknownCurrency(currency)
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    if currency in _FOUR_DECIMAL:
        return 4
    return 2


def check_currency(currency: str) -> str:
    """Return the code if it is a known ISO 4217 currency, else raise UnknownCurrency."""
    minor_digits(currency)
    return currency


def round_minor(value: Decimal) -> int:
    """The one rounding rule: a Decimal count of minor units to a whole one, half away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_minor_units(value: Decimal, currency: str) -> int:
    """A Decimal amount in major units (rupees, dollars) to whole minor units, by the one rounding rule."""
    return round_minor(value * (Decimal(10) ** minor_digits(currency)))


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money.amount must be an int of minor units, got {type(self.amount).__name__}")
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(expected=self.currency, got=other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def format(self) -> str:
        """Human form for descriptions and CSV: `INR 20.00`, `JPY 500`, `KWD 1.250`."""
        digits = minor_digits(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**digits) if digits else (abs(self.amount), 0)
        body = f"{whole}.{frac:0{digits}d}" if digits else f"{whole}"
        return f"{self.currency} {sign}{body}"
