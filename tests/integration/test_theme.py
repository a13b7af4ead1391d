"""The utility's look from settings (issue 14): one stylesheet carrying the brand colours
(GET /style.css, cacheable, no inline style anywhere, the CSP unchanged), the header's
logo and name, and the footer with the support contact and the privacy notice."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.security import PAGE_HEADERS
from idp.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"
CSP = PAGE_HEADERS["Content-Security-Policy"]


def stylesheet_href(html: str) -> str:
    links = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert len(links) == 1, f"one stylesheet per page: {links}"
    return links[0].replace("&amp;", "&")


def page(client: FlaskClient, path: str = "/login", language: str = "en") -> str:
    response = client.get(path, headers={"Accept-Language": language})
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- the stylesheet ------------------------------------------------------------------------------


def test_every_page_links_the_one_stylesheet_with_the_brand_colours_first(
    client: FlaskClient,
) -> None:
    href = stylesheet_href(page(client))
    assert re.fullmatch(r"/style\.css\?v=[0-9a-f]{16}", href), href
    response = client.get(href)
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    body = response.get_data(as_text=True)
    root = body.index(":root {")
    assert "--brand: #0b4f6c;" in body[root:] and "--on-brand: #ffffff;" in body[root:]
    # Then static/style.css, whole.
    assert body.endswith((PROJECT_ROOT / "static" / "style.css").read_text(encoding="utf-8"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers  # a page's header, not CSS's


def test_the_versioned_stylesheet_is_cached_for_a_year_and_revalidated_by_its_etag(
    client: FlaskClient,
) -> None:
    href = stylesheet_href(page(client))
    version = href.rsplit("=", 1)[1]
    response = client.get(href)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{version}"'
    again = client.get(href, headers={"If-None-Match": f'"{version}"'})
    assert again.status_code == 304 and not again.data
    # Without the version (or an old one), a browser must ask again each time.
    for stale in ("/style.css", "/style.css?v=0000000000000000"):
        answer = client.get(stale)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "public, no-cache"


def test_a_configured_colour_reaches_the_stylesheet_and_changes_its_version(
    client: FlaskClient, make_app: Callable[..., Flask]
) -> None:
    default = stylesheet_href(page(client))
    branded = make_app(brand_primary_colour="#AA0033", brand_accent_colour="#00ff00").test_client()
    href = stylesheet_href(page(branded))
    assert href != default
    body = branded.get(href).get_data(as_text=True)
    assert "--brand: #aa0033;" in body and "--accent: #00ff00;" in body


def test_a_light_colour_gets_dark_text_and_darker_links(make_app: Callable[..., Flask]) -> None:
    client = make_app(brand_primary_colour="#ffdd00").test_client()
    body = client.get(stylesheet_href(page(client))).get_data(as_text=True)
    assert "--brand: #ffdd00;" in body and "--on-brand: #1d2733;" in body
    ink = re.search(r"--brand-ink: (#[0-9a-f]{6});", body)
    assert ink and ink.group(1) != "#ffdd00"


def test_the_pages_csp_stays_strict(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.headers["Content-Security-Policy"] == CSP
    assert "style-src 'self';" in CSP and "unsafe-inline" not in CSP


# --- no inline style ----------------------------------------------------------------------------

INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)


def _page_templates() -> list[Path]:
    return sorted(p for p in TEMPLATES.rglob("*.html") if p.parent.name != "mail")


@pytest.mark.parametrize("template", _page_templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_page_template_has_an_inline_style(template: Path) -> None:
    """The pages' CSP refuses inline styles (the mails, read in mail programs, are not pages)."""
    assert not INLINE_STYLE.search(template.read_text(encoding="utf-8"))


def test_no_rendered_page_has_an_inline_style(client: FlaskClient) -> None:
    for path in ("/login", "/register", "/forgot-password", "/no-such-page"):
        html = client.get(path).get_data(as_text=True)
        assert "<html" in html and not INLINE_STYLE.search(html), path


# --- header and footer --------------------------------------------------------------------------


def test_the_header_shows_the_logo_and_the_name_leading_to_the_start_page(
    client: FlaskClient,
) -> None:
    html = page(client, language="ru")
    assert '<a class="brand" href="/">' in html
    assert '<img class="brand-logo" src="/static/logo.svg" alt=""' in html
    assert '<span class="brand-name">Портал клиентов газоснабжения</span>' in html
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    assert "– Портал клиентов газоснабжения</title>" in html
    assert client.get("/static/logo.svg").status_code == 200
    assert client.get("/static/favicon.svg").status_code == 200


@pytest.mark.parametrize(
    ("language", "support"),
    [("lv", "tālrunis 8000 0000"), ("ru", "телефон 8000 0000"), ("en", "phone 8000 0000")],
)
def test_the_footer_gives_the_support_contact_in_the_pages_language(
    client: FlaskClient, language: str, support: str
) -> None:
    for path in ("/login", "/register", "/no-such-page"):
        response = client.get(path, headers={"Accept-Language": language})
        footer = response.get_data(as_text=True).split('<footer class="foot">', 1)[1]
        assert support in footer, (language, path)
    assert "Privacy notice" not in footer  # no privacy_url: no link


def test_the_footer_links_the_privacy_notice_and_the_logo_the_utilitys_site(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(
        privacy_url="https://www.example.lv/privatums?x=1&y=2",
        brand_home_url="https://www.example.lv/",
        brand_name={"lv": "Latvijas Gāze", "en": "Latvian Gas"},
        support_contact="+371 6700 0000",
    ).test_client()
    english = page(client)
    assert '<a class="brand" href="https://www.example.lv/">' in english
    assert '<span class="brand-name">Latvian Gas</span>' in english
    footer = english.split('<footer class="foot">', 1)[1]
    assert '<a href="https://www.example.lv/privatums?x=1&amp;y=2">Privacy notice</a>' in footer
    assert "Latvian Gas" in footer and "+371 6700 0000" in footer
    latvian = page(client, language="lv").split('<footer class="foot">', 1)[1]
    assert ">Privātuma paziņojums</a>" in latvian and "Latvijas Gāze" in latvian
    # No Russian name: the default locale's (the test app's is en).
    assert '<span class="brand-name">Latvian Gas</span>' in page(client, language="ru")


def test_an_https_logo_is_shown_and_allowed_by_the_pages_csp(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(brand_logo="https://cdn.example.lv/logo.png").test_client()
    response = client.get("/login")
    assert 'src="https://cdn.example.lv/logo.png"' in response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://cdn.example.lv;" in policy
    assert policy == CSP.replace("data:;", "data: https://cdn.example.lv;")


def test_mails_carry_the_utilitys_name_in_their_language(make_app: Callable[..., Flask]) -> None:
    from idp import mail

    app = make_app(
        brand_name={"en": "Zemgale Gas", "ru": "Земгальский газ"},
        brand_primary_colour="#ffd200",
    )
    with app.app_context():
        _subject, text, html = mail.render("smtp_test", "ru", {})
        assert "\n-- \nЗемгальский газ\n" in text
        assert ">Земгальский газ</p>" in html
        _subject, text, _html = mail.render("smtp_test", "lv", {})  # none in lv: the default's
        assert "\n-- \nZemgale Gas\n" in text
    # The name's colour in an HTML mail: the brand colour as it reads on white.
    assert "color:#ffd200;" not in html and "color:#" in html
