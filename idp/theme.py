"""The utility's look from settings (issue 14): brand name, logo, favicon, colours, the
footer's links, and the pages' one stylesheet.

The pages' CSP allows styles from 'self' only (no style attribute, no <style>), so the
configured colours reach the CSS through the stylesheet itself: GET /style.css is a
`:root { --brand: …; }` block computed from settings followed by static/style.css. Every
page links it with the body's hash in the URL (`/style.css?v=…`): a browser keeps it for a
year and fetches the new one after a deploy changes either part. Without that version (or
with an old one) it is revalidated with its ETag.

Contrast: text on the brand colour is white or near-black, whichever contrasts more;
links and the focus outline use the brand colour darkened until it reads on the page
background (WCAG AA: 4.5:1), so any configured colour keeps the pages accessible.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple

from flask import Blueprint, Flask, Response, current_app, request, url_for

from idp.i18n import current_language
from idp.settings import PROJECT_ROOT, Settings

STYLESHEET = PROJECT_ROOT / "static" / "style.css"
# The page background and the body text of static/style.css.
PAGE_BACKGROUND = "#f4f6f8"
INK = "#1d2733"
WHITE = "#ffffff"
# WCAG 2 AA: normal text 4.5:1.
TEXT_CONTRAST = 4.5
# Cache-Control of the versioned URL (its body never changes) and of any other.
VERSIONED_CACHE = "public, max-age=31536000, immutable"
UNVERSIONED_CACHE = "public, no-cache"

log = logging.getLogger(__name__)
bp = Blueprint("theme", __name__)


# --- colours ----------------------------------------------------------------------------------


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0, min(255, c))):02x}" for c in rgb)


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #rrggbb colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(colour: str, other: str, share: float) -> str:
    """`colour` with `share` (0..1) of `other` mixed in."""
    return _hex(
        tuple(c + (o - c) * share for c, o in zip(_rgb(colour), _rgb(other), strict=True))  # type: ignore[arg-type]
    )


def text_on(background: str) -> str:
    """White or the body's near-black, whichever reads better on `background`; black on a
    middle tone where neither reaches 4.5:1 (black always does when white does not)."""
    best = WHITE if contrast(WHITE, background) >= contrast(INK, background) else INK
    if contrast(best, background) < TEXT_CONTRAST:
        return "#000000"
    return best


def readable_on(colour: str, background: str, ratio: float = TEXT_CONTRAST) -> str:
    """`colour` as it is if it reads on `background`, else darkened just enough."""
    for step in range(21):
        candidate = mix(colour, "#000000", step / 20)
        if contrast(candidate, background) >= ratio:
            return candidate
    return "#000000"


class Palette(NamedTuple):
    brand: str  # backgrounds: the header, buttons
    on_brand: str  # text on them
    brand_hover: str  # a button under the pointer
    ink: str  # the brand colour as text (links) and the focus outline
    accent: str  # decoration only

    @classmethod
    def of(cls, settings: Settings) -> Palette:
        brand = settings.brand_primary_colour.lower()
        on_brand = text_on(brand)
        hover = mix(brand, "#000000" if on_brand == WHITE else WHITE, 0.18)
        return cls(
            brand=brand,
            on_brand=on_brand,
            brand_hover=hover,
            ink=readable_on(brand, PAGE_BACKGROUND),
            accent=settings.brand_accent_colour.lower(),
        )

    def css(self) -> str:
        return (
            ":root {\n"
            f"  --brand: {self.brand};\n"
            f"  --on-brand: {self.on_brand};\n"
            f"  --brand-hover: {self.brand_hover};\n"
            f"  --brand-ink: {self.ink};\n"
            f"  --accent: {self.accent};\n"
            "}\n"
        )


# --- the stylesheet ---------------------------------------------------------------------------


class _Stylesheet:
    """The body of /style.css and its version: built once per process (a deploy that
    changes static/style.css or the colours restarts it)."""

    def __init__(self, settings: Settings, path: Path = STYLESHEET) -> None:
        head = (
            f"/* The colours of the settings (brand_*_colour), then static/style.css. */\n"
            f"{Palette.of(settings).css()}\n"
        )
        self.body = (head + path.read_text(encoding="utf-8")).encode()
        self.version = hashlib.sha256(self.body).hexdigest()[:16]


def _stylesheet() -> _Stylesheet:
    sheet: _Stylesheet = current_app.extensions["idp.stylesheet"]
    return sheet


@bp.get("/style.css")
def stylesheet() -> Response:
    sheet = _stylesheet()
    response = Response(sheet.body, mimetype="text/css")
    response.set_etag(sheet.version)
    response.headers["Cache-Control"] = (
        VERSIONED_CACHE if request.args.get("v") == sheet.version else UNVERSIONED_CACHE
    )
    response.make_conditional(request)  # 304 when If-None-Match names this version
    return response


def stylesheet_url() -> str:
    return url_for("theme.stylesheet", v=_stylesheet().version)


# --- what the templates show -------------------------------------------------------------------


class Brand(NamedTuple):
    """The utility as a page shows it, in the page's language."""

    name: str
    logo_url: str
    favicon_url: str
    favicon_type: str
    home_url: str
    privacy_url: str
    support: str


_IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


def _image_url(value: str) -> str:
    return value if "://" in value else url_for("static", filename=value)


def brand() -> Brand:
    settings: Settings = current_app.config["IDP_SETTINGS"]
    language = current_language()
    return Brand(
        name=brand_name(),
        logo_url=_image_url(settings.brand_logo),
        favicon_url=_image_url(settings.brand_favicon),
        favicon_type=_IMAGE_TYPES.get(Path(settings.brand_favicon.split("?")[0]).suffix, ""),
        home_url=settings.brand_home_url or url_for("accounts.signed_in"),
        privacy_url=settings.privacy_url,
        support=settings.support_contact_in(language),
    )


def brand_name() -> str:
    """The utility's name in the language being rendered (a page, or a mail)."""
    settings: Settings = current_app.config["IDP_SETTINGS"]
    return settings.brand_name_in(current_language())


def brand_palette() -> Palette:
    """The colours (the HTML mails, whose styles are inline, take the link colour)."""
    palette: Palette = current_app.extensions["idp.palette"]
    return palette


def init_app(app: Flask) -> None:
    settings: Settings = app.config["IDP_SETTINGS"]
    palette = Palette.of(settings)
    if palette.ink != palette.brand:
        log.warning(
            "brand_primary_colour %s is too light for text on the page background; links and "
            "the focus outline use %s instead",
            palette.brand,
            palette.ink,
        )
    app.extensions["idp.stylesheet"] = _Stylesheet(settings)
    app.extensions["idp.palette"] = palette
    app.register_blueprint(bp)
    app.jinja_env.globals["stylesheet_url"] = stylesheet_url
    app.jinja_env.globals["brand"] = brand
    app.jinja_env.globals["brand_name"] = brand_name
    app.jinja_env.globals["brand_palette"] = brand_palette
