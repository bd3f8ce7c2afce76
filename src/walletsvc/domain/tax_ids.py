"""Tax ids in shape: an Indian GSTIN (15 characters, its state code and check character), an EU VAT
number by its country's pattern, or a generic id elsewhere. Shape only: whether the id is registered is
the tax authority's to say (no lookup is made)."""

from __future__ import annotations

import re

from walletsvc.domain.tax import INDIA, KNOWN_GST_CODES, gst_state_code

_GSTIN = re.compile(r"^(?P<state>[0-9]{2})[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# EU VAT numbers: the country's VAT prefix (Greece is EL) and its pattern, by ISO 3166-1 alpha-3.
EU_VAT: dict[str, tuple[str, re.Pattern[str]]] = {
    "AUT": ("AT", re.compile(r"^ATU[0-9]{8}$")),
    "BEL": ("BE", re.compile(r"^BE[01][0-9]{9}$")),
    "DEU": ("DE", re.compile(r"^DE[0-9]{9}$")),
    "DNK": ("DK", re.compile(r"^DK[0-9]{8}$")),
    "ESP": ("ES", re.compile(r"^ES[0-9A-Z][0-9]{7}[0-9A-Z]$")),
    "FIN": ("FI", re.compile(r"^FI[0-9]{8}$")),
    "FRA": ("FR", re.compile(r"^FR[0-9A-HJ-NP-Z]{2}[0-9]{9}$")),
    "GRC": ("EL", re.compile(r"^EL[0-9]{9}$")),
    "IRL": ("IE", re.compile(r"^IE([0-9]{7}[A-W][A-IW]?|[0-9][A-Z+*][0-9]{5}[A-W])$")),
    "ITA": ("IT", re.compile(r"^IT[0-9]{11}$")),
    "LUX": ("LU", re.compile(r"^LU[0-9]{8}$")),
    "NLD": ("NL", re.compile(r"^NL[0-9]{9}B[0-9]{2}$")),
    "POL": ("PL", re.compile(r"^PL[0-9]{10}$")),
    "PRT": ("PT", re.compile(r"^PT[0-9]{9}$")),
    "SWE": ("SE", re.compile(r"^SE[0-9]{10}01$")),
}
_GENERIC = re.compile(r"^[A-Z0-9][A-Z0-9 ./-]{1,28}[A-Z0-9]$")


class TaxIdInvalid(ValueError):
    """A tax id whose shape does not fit its country; the message says what is expected."""


def gstin_check_character(first14: str) -> str:
    """GSTIN's check character: Luhn mod 36 over the first 14 characters."""
    total = 0
    for index, char in enumerate(first14):
        product = _GSTIN_ALPHABET.index(char) * (2 if index % 2 else 1)
        total += product // 36 + product % 36
    return _GSTIN_ALPHABET[(36 - total % 36) % 36]


def normalise_tax_id(raw: str) -> str:
    """Upper case, without the spaces, dots and dashes people type into VAT numbers."""
    return re.sub(r"[\s.\-]", "", raw.strip().upper())


def check_tax_id(raw: str, *, country: str, state: str | None = None) -> str:
    """The tax id in its normal form if it fits the shape for `country` (ISO alpha-3), else TaxIdInvalid.
    A GSTIN's state code must be a real one and, when the buyer's state is given, that state's."""
    if country == INDIA:
        tax_id = normalise_tax_id(raw)
        found = _GSTIN.match(tax_id)
        if found is None:
            raise TaxIdInvalid(
                "a GSTIN is 15 characters: a 2-digit state code, a 10-character PAN, an entity digit, "
                "'Z' and a check character (e.g. 29ABCDE1234F1ZW)"
            )
        if found["state"] not in KNOWN_GST_CODES:
            raise TaxIdInvalid(f"the GSTIN's state code {found['state']} is not a GST state code")
        if tax_id[-1] != gstin_check_character(tax_id[:14]):
            raise TaxIdInvalid("the GSTIN's check character does not match (a typo?)")
        wanted = gst_state_code(state)
        if state and wanted != found["state"]:
            raise TaxIdInvalid(
                f"the GSTIN's state code {found['state']} is not the state given ({state}, GST code {wanted})"
            )
        return tax_id
    if country in EU_VAT:
        tax_id = normalise_tax_id(raw)
        prefix, pattern = EU_VAT[country]
        if not tax_id.startswith(prefix):
            tax_id = prefix + tax_id  # the number typed without its country prefix
        if pattern.match(tax_id) is None:
            raise TaxIdInvalid(f"not a VAT number of this country (expected {pattern.pattern[1:-1]})")
        return tax_id
    tax_id = raw.strip().upper()
    if _GENERIC.match(tax_id) is None:
        raise TaxIdInvalid(
            "a tax id is 3 to 30 letters and digits (spaces, '.', '/', '-' between them are kept)"
        )
    return tax_id
