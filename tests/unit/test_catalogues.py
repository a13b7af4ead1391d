"""The message catalogues keep up with the code: the template holds every string the code
and templates mark for translation (a string added without `make messages` fails here),
and each language's catalogue translates every one of them, none fuzzy, with the same
placeholders, and compiles."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from idp.settings import PROJECT_ROOT

TRANSLATIONS = PROJECT_ROOT / "idp" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
CATALOGUES = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
# %(name)s, %s, %d and {name}: what gettext, Jinja and str.format fill in.
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]*\}")


def _read(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def _ids(catalog: Catalog) -> set[object]:
    return {message.id for message in catalog if message.id}


def _forms(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple) else [str(message.id)]


def _translations(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple) else [str(message.string)]


def test_the_template_holds_every_string_of_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        ["make", "--no-print-directory", "-s", "messages", f"POT={fresh}"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    added = _ids(_read(fresh)) - _ids(_read(TEMPLATE))
    gone = _ids(_read(TEMPLATE)) - _ids(_read(fresh))
    assert not added, f"run `make messages`: new strings not in the template: {sorted(added)}"
    assert not gone, f"run `make messages`: the template has strings the code lost: {gone}"


def _problems(catalogue: Catalog) -> list[str]:
    problems = []
    for message in catalogue:
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        wanted = {p for form in _forms(message) for p in _PLACEHOLDER.findall(form)}
        for text in _translations(message):
            if not text.strip():
                problems.append(f"untranslated: {message.id!r}")
            elif set(_PLACEHOLDER.findall(text)) != wanted:
                problems.append(f"placeholders differ: {message.id!r} -> {text!r}")
    return problems


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_a_catalogue_translates_every_string_with_the_same_placeholders(path: Path) -> None:
    catalogue = _read(path)
    assert _ids(catalogue) == _ids(_read(TEMPLATE)), "run `make messages` to update it"
    assert not (problems := _problems(catalogue)), "\n".join(problems)
    write_mo(io.BytesIO(), catalogue)  # compiles


def test_the_check_finds_fuzzy_untranslated_and_lost_placeholders() -> None:
    catalogue = Catalog(locale="lv")
    catalogue.add("Log in", "Pieslēgties")
    catalogue.add("Cancel", "Atcelt", flags=["fuzzy"])
    catalogue.add("Continue", "")
    catalogue.add("Hello %(name)s", "Sveiki")
    catalogue.add("Send again to {address}", "Sūtīt vēlreiz uz {address}")
    assert _problems(catalogue) == [
        "fuzzy: 'Cancel'",
        "untranslated: 'Continue'",
        "placeholders differ: 'Hello %(name)s' -> 'Sveiki'",
    ]
