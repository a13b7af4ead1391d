"""normalize_email: the one rule for comparing addresses (trim, NFKC, lower-case, IDNA)."""

from __future__ import annotations

import pytest

from idp.accounts.services import AccountError, normalize_email


def test_surrounding_spaces_are_trimmed() -> None:
    assert normalize_email("  janis@example.lv \t") == "janis@example.lv"


def test_the_whole_address_is_lower_cased() -> None:
    assert normalize_email("Janis.Berzins@Example.LV") == "janis.berzins@example.lv"


def test_fullwidth_characters_fold_to_ascii_by_nfkc() -> None:
    assert normalize_email("ＪＡＮＩＳ＠ＥＸＡＭＰＬＥ．ＬＶ") == "janis@example.lv"


def test_composed_and_decomposed_spellings_compare_equal() -> None:
    composed = "J\u0101nis@example.lv"      # ā as one code point
    decomposed = "Ja\u0304nis@example.lv"   # a + combining macron
    assert normalize_email(composed) == normalize_email(decomposed) == "jānis@example.lv"


def test_a_unicode_domain_becomes_punycode_and_the_local_part_stays_unicode() -> None:
    assert normalize_email("Jānis@Piemērs.lv") == "jānis@xn--piemrs-s3a.lv"
    # Typed already in punycode, it is the same address.
    assert normalize_email("jānis@XN--PIEMRS-S3A.LV") == "jānis@xn--piemrs-s3a.lv"


def test_a_fully_qualified_domain_is_the_same_address() -> None:
    assert normalize_email("janis@example.lv.") == normalize_email("janis@example.lv")


@pytest.mark.parametrize("garbage", [
    "",
    "   ",
    "janis",
    "janis@",
    "@example.lv",
    "janis@localhost",          # no dot in the domain
    "jan is@example.lv",        # inner space
    "janis@@example.lv",        # two @
    "a@b@example.lv",
    "jan\x00is@example.lv",     # control character
    "janis\u200b@example.lv",   # zero-width space, invisible
    "janis@example..lv",        # empty label
    "janis@" + "x" * 64 + ".lv",  # a label longer than 63
    "j" * 320 + "@example.lv",  # longer than an address may be
])
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
