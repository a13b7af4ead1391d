"""The colours of the utility's look (idp/theme.py): any configured brand colour gives
pages that keep WCAG AA contrast."""

from __future__ import annotations

import pytest

from idp.settings import load_settings
from idp.theme import INK, PAGE_BACKGROUND, WHITE, Palette, contrast


def palette(colour: str) -> Palette:
    return Palette.of(load_settings({"brand_primary_colour": colour}, environ={}))


def test_the_contrast_ratio_is_wcags() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#0b4f6c", "#0b4f6c") == 1


def test_the_default_colour_is_used_as_it_is_with_white_text() -> None:
    colours = palette("#0b4f6c")
    assert colours.brand == colours.ink == "#0b4f6c"
    assert colours.on_brand == WHITE
    assert contrast(colours.on_brand, colours.brand) >= 7


@pytest.mark.parametrize(
    "colour",
    ["#ffdd00", "#ffffff", "#00a3e0", "#e30613", "#7fba00", "#000000", "#6b2c91", "#808080"],
)
def test_any_brand_colour_keeps_text_readable(colour: str) -> None:
    colours = palette(colour)
    # Text on the header and on buttons: white or near-black, whichever reads.
    assert colours.on_brand in (WHITE, INK, "#000000")
    assert contrast(colours.on_brand, colours.brand) >= 4.5
    assert contrast(colours.on_brand, colours.brand_hover) >= 4.5
    # Links and the focus outline, on the page and on the white box.
    assert contrast(colours.ink, PAGE_BACKGROUND) >= 4.5
    assert contrast(colours.ink, WHITE) >= 4.5


def test_a_light_colour_gets_dark_text_and_darkened_links() -> None:
    colours = palette("#ffdd00")
    assert colours.on_brand == INK
    assert colours.ink != "#ffdd00"
    assert "--brand: #ffdd00;" in colours.css() and f"--brand-ink: {colours.ink};" in colours.css()
