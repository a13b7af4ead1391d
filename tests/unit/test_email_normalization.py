"""The one e-mail address rule (idp.email_address): which addresses are usable, and
normalize_email, the form they are compared in (trim, NFKC, lower-case, IDNA)."""

from __future__ import annotations

import pytest

from idp.accounts.services import AccountError, normalize_email
from idp.email_address import InvalidEmail, parse_email
from idp.mail import check_address


def test_surrounding_spaces_are_trimmed() -> None:
    assert normalize_email("  janis@example.lv \t") == "janis@example.lv"


def test_the_whole_address_is_lower_cased() -> None:
    assert normalize_email("Janis.Berzins@Example.LV") == "janis.berzins@example.lv"


def test_fullwidth_characters_fold_to_ascii_by_nfkc() -> None:
    assert normalize_email("ＪＡＮＩＳ＠ＥＸＡＭＰＬＥ．ＬＶ") == "janis@example.lv"


def test_composed_and_decomposed_spellings_compare_equal() -> None:
    composed = "J\u0101nis@example.lv"  # ā as one code point
    decomposed = "Ja\u0304nis@example.lv"  # a + combining macron
    assert normalize_email(composed) == normalize_email(decomposed) == "jānis@example.lv"


def test_a_unicode_domain_becomes_punycode_and_the_local_part_stays_unicode() -> None:
    assert normalize_email("Jānis@Piemērs.lv") == "jānis@xn--piemrs-s3a.lv"
    # Typed already in punycode, it is the same address.
    assert normalize_email("jānis@XN--PIEMRS-S3A.LV") == "jānis@xn--piemrs-s3a.lv"


def test_a_fully_qualified_domain_is_the_same_address() -> None:
    assert normalize_email("janis@example.lv.") == normalize_email("janis@example.lv")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "janis",
        "janis@",
        "@example.lv",
        "janis@localhost",  # no dot in the domain
        "jan is@example.lv",  # inner space
        "janis@@example.lv",  # two @
        "a@b@example.lv",
        "jan\x00is@example.lv",  # control character
        "janis\u200b@example.lv",  # zero-width space, invisible
        "janis@example..lv",  # empty label
        "janis@" + "x" * 64 + ".lv",  # a label longer than 63
        "j" * 320 + "@example.lv",  # longer than an address may be
    ],
)
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(AccountError):
        normalize_email(garbage)


def test_the_length_limit_counts_the_punycode_form() -> None:
    # 288 characters as typed, but over 320 once the domain is in punycode: the form that
    # is stored (users.email is 320 characters).
    label = "āēīūčšžņ" * 3
    address = "a" * 60 + "@" + ".".join([label] * 9) + ".lv"
    assert len(address) <= 320
    with pytest.raises(AccountError):
        normalize_email(address)


# --- the one address rule (idp.email_address), shared by every form and the outbox --------

REFUSED = [
    "<script>@example.lv",  # angle brackets: markup, or a display name in a header
    "a@-example.lv",  # a label starting with a hyphen
    "a@example-.lv",  # a label ending with a hyphen
    "a@exa_mple.lv",  # underscore: not a host name
    '"quoted"@example.lv',  # quoted strings are not accepted
    "a b@example.lv",  # whitespace
    "a@example.lv\nBcc: victim@example.lv",  # header injection
    "a@example.lv\r\nX: y",
    "a@" + "x" * 64 + ".example.lv",  # a label of 64
    "a,b@example.lv",  # a list
    "a;b@example.lv",
    "a:b@example.lv",
    "(comment)a@example.lv",
    "[a]@example.lv",
    "a\\b@example.lv",
    ".a@example.lv",  # a dot at either end, or two in a row
    "a.@example.lv",
    "a..b@example.lv",
    "a@example",  # no dot in the domain
    "a@1.2.3.4",  # an all-digit top-level label: an IP, not a domain
    "a@[192.0.2.1]",  # address literals are not accepted
    "a@example.lv-",
    "a@exa mple.lv",
    "jānis\u2019s@example.lv",  # right single quotation mark: a symbol, not a letter
    "a" * 65 + "@example.lv",  # local part over 64
    "a@" + ".".join(["x" * 63] * 4) + ".lv",  # domain over 253
]
ACCEPTED = {
    "janis@example.lv": "janis@example.lv",
    "Jānis.Bērziņš@Example.LV": "jānis.bērziņš@example.lv",
    "o'brien+gas@mail.example.lv": "o'brien+gas@mail.example.lv",
    "a_b-c@sub-domain.example.lv": "a_b-c@sub-domain.example.lv",
    "x@xn--piemrs-s3a.lv": "x@xn--piemrs-s3a.lv",
    "x@a1.lv": "x@a1.lv",
    "a" * 64 + "@example.lv": "a" * 64 + "@example.lv",
    "a@" + "x" * 63 + ".lv": "a@" + "x" * 63 + ".lv",
}


@pytest.mark.parametrize("address", REFUSED)
def test_the_rule_refuses(address: str) -> None:
    with pytest.raises(InvalidEmail):
        parse_email(address)
    with pytest.raises(AccountError):
        normalize_email(address)
    with pytest.raises(ValueError, match="not a usable"):
        check_address(address)


@pytest.mark.parametrize(("typed", "normalized"), ACCEPTED.items())
def test_the_rule_accepts(typed: str, normalized: str) -> None:
    address = parse_email(typed)
    assert address.normalized == normalized == normalize_email(typed)
    # What the forms store as the display form is what the outbox takes as it is.
    check_address(address.display)


@pytest.mark.parametrize(
    "typed",
    [
        "  Janis@Example.lv ",
        "ＪＡＮＩＳ＠ＥＸＡＭＰＬＥ．ＬＶ",
        "janis@example.lv.",
        "Jānis@Piemērs.lv",
    ],
)
def test_the_display_form_is_trimmed_nfkc_and_what_the_outbox_accepts(typed: str) -> None:
    display = parse_email(typed).display
    assert display == display.strip() and "." != display[-1]
    check_address(display)
    # The raw typed string is not: the outbox never sends to a different spelling.
    if typed != display:
        with pytest.raises(ValueError):
            check_address(typed)
