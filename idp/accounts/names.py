"""The name an account gets from a bank or eSignature login.

Banks often send names as the passport's machine-readable zone has them: in capitals
("ANNA PASTĀVĪGĀ"), sometimes without diacritics. The rule, in one place
(`account_name`):

1. The upstream's given and family name, NFC-normalised, runs of spaces made one.
2. Not all capitals (any lower-case letter): kept as sent. The upstream verified it and
   writes it as the person does.
3. All capitals, and the customer data's name is the same name: case-insensitively, in any
   order of given/family name, ignoring extra spaces and diacritics (a bank that cannot
   write "Ā" sends "A"): the customer data's spelling, unless that is all capitals too.
4. Otherwise (no customer-data name, or another one, e.g. a new family name): the
   upstream's capitals title-cased per word and per hyphen part ("OZOLA-BĒRZIŅA" ->
   "Ozola-Bērziņa"). The upstream is the verified source; the customer data may be old.
5. Nothing from the upstream: the customer data's name.
"""

from __future__ import annotations

import re
import unicodedata

# A run of letters (any script): what gets a capital first letter when title-casing.
# Hyphens, apostrophes and spaces separate runs, so "O'BRIEN" -> "O'Brien".
_LETTERS = re.compile(r"[^\W\d_]+")


def clean(name: str) -> str:
    """NFC, one space between words, none around."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def is_all_capitals(name: str) -> bool:
    """At least one cased letter, and none lower-case ("ANNA", "ĀBOLS-2" yes; "Anna" no)."""
    return name != name.lower() and name == name.upper()


def title_case(name: str) -> str:
    """Latvian-friendly title case of capitals: each run of letters Capitalised."""
    return _LETTERS.sub(lambda m: m[0][:1].upper() + m[0][1:].lower(), clean(name))


def _comparable(name: str) -> list[str]:
    """The words of a name, case and diacritics folded, in sorted order."""
    decomposed = unicodedata.normalize("NFKD", clean(name).casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return sorted(plain.split())


def same_name(a: str, b: str) -> bool:
    """The same words whatever their order, case, diacritics and spacing."""
    return bool(_comparable(a)) and _comparable(a) == _comparable(b)


def account_name(given_name: str, family_name: str, customer_name: str | None) -> str:
    """The account's name from an upstream's given/family name and the customer data's
    name of the same person (matched on the verified personal code), by the rule above."""
    upstream = clean(f"{given_name} {family_name}")
    known = clean(customer_name or "")
    if not upstream:
        return known
    if not is_all_capitals(upstream):
        return upstream
    if known and same_name(upstream, known) and not is_all_capitals(known):
        return known
    return title_case(upstream)
