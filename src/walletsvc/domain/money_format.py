"""Money written for people, in e-mails: `Rs 1,00,000.00`, `¥500`, `KD 1.250`, `$5.00`, `CHF 12.50`.

`Money.format()` (`INR 500.00`) stays the form for descriptions and CSV; this one is for reading.
Thousands are grouped with commas; INR in the Indian way (lakh, crore: `Rs 12,34,567.00`), which is how
an Indian reader writes it. A negative amount puts its sign before the symbol: `-$5.00`.
"""

from __future__ import annotations

from walletsvc.domain.money import Money, minor_digits

# Symbols written before the amount. A currency not listed is written by its code and a space.
SYMBOLS: dict[str, str] = {
    "INR": "Rs ",
    "JPY": "¥",
    "KWD": "KD ",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
}


def group_thousands(digits: str, *, indian: bool = False) -> str:
    """`1234567` -> `1,234,567`, or `12,34,567` in the Indian way (the last three, then twos)."""
    if len(digits) <= 3:
        return digits
    head, last3 = digits[:-3], digits[-3:]
    size = 2 if indian else 3
    groups = []
    while head:
        groups.append(head[-size:])
        head = head[:-size]
    return ",".join([*reversed(groups), last3])


def format_amount(amount: int, currency: str) -> str:
    """An integer count of `currency`'s minor units, for people. Raises UnknownCurrency for a code that
    is not ISO 4217 (it has no known number of decimals)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"an amount is an int of minor units, got {type(amount).__name__}")
    digits = minor_digits(currency)
    whole, frac = divmod(abs(amount), 10**digits)
    body = group_thousands(str(whole), indian=currency == "INR")
    if digits:
        body = f"{body}.{frac:0{digits}d}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{SYMBOLS.get(currency, f'{currency} ')}{body}"


def format_money(money: Money) -> str:
    return format_amount(money.amount, money.currency)
