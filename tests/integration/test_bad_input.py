"""Scenarios with hostile or broken input at every endpoint: never a server error.
Protocol endpoints answer JSON errors; the pages a browser sees answer HTML."""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.datastructures import MultiDict

from tests.conftest import auth_params, csrf_token, query
from tests.integration.conftest import TOKEN_URL, basic

JSON = "application/json"
HTML = "text/html"
BIG = "x" * (70 * 1024)

# (method, path, what it answers)
ENDPOINTS = [
    ("GET", "/authorize", HTML),
    ("POST", "/authorize", HTML),
    ("GET", "/authorize/resume", HTML),
    ("POST", "/token", JSON),
    ("GET", "/userinfo", JSON),
    ("POST", "/userinfo", JSON),
    ("POST", "/revoke", JSON),
    ("POST", "/introspect", JSON),
    ("GET", "/logout", HTML),
    ("POST", "/logout", HTML),
    ("POST", "/logout/confirm", HTML),
    ("GET", "/login", HTML),
    ("POST", "/login", HTML),
    ("GET", "/consent", HTML),
    ("POST", "/consent", HTML),
    ("GET", "/.well-known/openid-configuration", JSON),
    ("GET", "/.well-known/oauth-authorization-server", JSON),
    ("GET", "/jwks.json", JSON),
]
# What each endpoint answers to parameters that make no sense to it: an error page, a
# JSON error, or (for endpoints that need no parameters) its usual answer.
JUNK_STATUS = {
    ("GET", "/authorize"): 400,
    ("POST", "/authorize"): 400,
    ("GET", "/authorize/resume"): 400,
    ("POST", "/token"): 400,
    ("GET", "/userinfo"): 401,
    ("POST", "/userinfo"): 401,
    ("POST", "/revoke"): 401,
    ("POST", "/introspect"): 401,
    ("GET", "/logout"): 302,
    ("POST", "/logout"): 302,
    ("POST", "/logout/confirm"): 400,
    ("GET", "/login"): 200,
    ("POST", "/login"): 400,
    ("GET", "/consent"): 400,
    ("POST", "/consent"): 400,
    ("GET", "/.well-known/openid-configuration"): 200,
    ("GET", "/.well-known/oauth-authorization-server"): 200,
    ("GET", "/jwks.json"): 200,
}
# Endpoints whose form body is read (every POST: the NUL guard reads it before the view).
BODY_ENDPOINTS = [(m, p, k) for m, p, k in ENDPOINTS if m == "POST"]
IDS = [f"{m} {p}" for m, p, _ in ENDPOINTS]
BODY_IDS = [f"{m} {p}" for m, p, _ in BODY_ENDPOINTS]
PARAMETER_NAMES = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
    "id_token_hint",
    "post_logout_redirect_uri",
    "interaction",
    "email",
    "password",
    "csrf_token",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "prompt",
    "max_age",
]


def assert_handled(response, kind: str, status: int | None = None) -> None:
    """Not a server error, and in the endpoint's own language."""
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if status is not None:
        assert response.status_code == status, response.get_data(as_text=True)[:500]
    if response.status_code in (301, 302, 303):
        return
    assert response.mimetype in ((kind, "application/jwk-set+json") if kind == JSON else (kind,)), (
        response.mimetype
    )
    if kind == JSON and response.status_code >= 400:
        body = response.get_json()
        assert isinstance(body.get("error"), str), body
        assert response.headers["Cache-Control"] == "no-store"


def send(client, method: str, path: str, params, **kwargs):
    """Parameters in the query for GET, in the form body for POST."""
    if method == "GET":
        return client.open(path, method=method, query_string=params, **kwargs)
    return client.open(path, method=method, data=params, **kwargs)


# --- wrong methods ---------------------------------------------------------------------------


WRONG_METHODS = [
    ("GET", "/token", JSON),
    ("PUT", "/token", JSON),
    ("GET", "/revoke", JSON),
    ("DELETE", "/revoke", JSON),
    ("GET", "/introspect", JSON),
    ("PATCH", "/introspect", JSON),
    ("PUT", "/userinfo", JSON),
    ("DELETE", "/userinfo", JSON),
    ("POST", "/.well-known/openid-configuration", JSON),
    ("POST", "/.well-known/oauth-authorization-server", JSON),
    ("POST", "/jwks.json", JSON),
    ("PUT", "/jwks.json", JSON),
    ("PUT", "/authorize", HTML),
    ("DELETE", "/authorize", HTML),
    ("POST", "/authorize/resume", HTML),
    ("PUT", "/logout", HTML),
    ("GET", "/logout/confirm", HTML),
    ("PUT", "/login", HTML),
    ("DELETE", "/consent", HTML),
    ("POST", "/logged-out", HTML),
]


@pytest.mark.parametrize(
    "method, path, kind", WRONG_METHODS, ids=[f"{m} {p}" for m, p, _ in WRONG_METHODS]
)
def test_wrong_method_is_405(client, method, path, kind):
    response = client.open(path, method=method)
    assert_handled(response, kind, 405)
    assert "Allow" in response.headers


def test_unknown_paths_are_404(client):
    assert_handled(client.get("/token/extra"), JSON, 404)
    assert_handled(client.get("/.well-known/nothing"), JSON, 404)
    assert_handled(client.get("/nothing-here"), HTML, 404)


# --- oversized requests ------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, kind", BODY_ENDPOINTS, ids=BODY_IDS)
def test_oversized_body_is_413(client, method, path, kind):
    response = client.post(path, data={"state": BIG, "token": "x"})
    assert_handled(response, kind, 413)


@pytest.mark.parametrize("method, path, kind", BODY_ENDPOINTS, ids=BODY_IDS)
def test_too_many_multipart_parts_is_413(client, method, path, kind):
    fields = {f"f{i}": "1" for i in range(300)}
    response = client.post(path, data=fields, content_type="multipart/form-data")
    assert_handled(response, kind, 413)


@pytest.mark.parametrize("method, path, kind", BODY_ENDPOINTS, ids=BODY_IDS)
def test_many_small_form_fields(client, method, path, kind):
    # Below the size limit, so parsed; then refused for what they say (or ignored).
    response = client.post(path, data={f"f{i}": "1" for i in range(3000)})
    assert_handled(response, kind, JUNK_STATUS[method, path])


@pytest.mark.parametrize("method, path, kind", ENDPOINTS, ids=IDS)
def test_oversized_parameters(client, confidential_client, method, path, kind):
    params = {name: "y" * 3000 for name in PARAMETER_NAMES}
    response = send(client, method, path, params, headers={"Authorization": "Bearer " + "z" * 3000})
    # 23 parameters of 3000 characters: over the 64 KB limit when sent as a form body.
    reads_body = method == "POST"  # the NUL guard reads every POST body first
    assert_handled(response, kind, 413 if reads_body else JUNK_STATUS[method, path])


def test_oversized_parameter_at_authorize_is_an_error_page(client, confidential_client):
    for name in [*PARAMETER_NAMES, "é" * 3000, "ü", '"q"']:
        params, _ = auth_params(confidential_client, **{name: "y" * 3000})
        response = client.get("/authorize", query_string=params)
        assert_handled(response, HTML, 400)
        assert "invalid_request" in response.get_data(as_text=True)


def test_oversized_headers(client, confidential_client):
    headers = {"Authorization": "Basic " + "A" * 20000, "Cookie": "idp_session=" + "c" * 5000}
    for method, path, kind in ENDPOINTS:
        assert_handled(client.open(path, method=method, headers=headers), kind)


# --- missing parameters ------------------------------------------------------------------------


MISSING = [
    ("GET", "/authorize", HTML, 400),
    ("POST", "/authorize", HTML, 400),
    ("GET", "/authorize/resume", HTML, 400),
    ("POST", "/token", JSON, 400),
    ("GET", "/userinfo", JSON, 401),
    ("POST", "/userinfo", JSON, 401),
    ("POST", "/revoke", JSON, 401),
    ("POST", "/introspect", JSON, 401),
    ("GET", "/logout", HTML, 302),
    ("POST", "/logout", HTML, 302),
    ("POST", "/logout/confirm", HTML, 400),
    ("GET", "/login", HTML, 200),
    ("POST", "/login", HTML, 400),
    ("GET", "/consent", HTML, 400),
    ("POST", "/consent", HTML, 400),
    ("GET", "/.well-known/openid-configuration", JSON, 200),
    ("GET", "/jwks.json", JSON, 200),
]


@pytest.mark.parametrize(
    "method, path, kind, status", MISSING, ids=[f"{m} {p}" for m, p, _, _ in MISSING]
)
def test_no_parameters_at_all(client, method, path, kind, status):
    assert_handled(client.open(path, method=method), kind, status)


@pytest.mark.parametrize("missing", ["client_id", "redirect_uri"])
def test_authorize_without_client_or_redirect_uri(client, confidential_client, missing):
    params, _ = auth_params(confidential_client)
    del params[missing]
    assert_handled(client.get("/authorize", query_string=params), HTML, 400)


def test_authorize_without_response_type_goes_back_to_the_client(client, confidential_client):
    params, _ = auth_params(confidential_client)
    del params["response_type"]
    response = client.get("/authorize", query_string=params)
    assert_handled(response, HTML, 302)
    location = response.headers["Location"]
    assert location.startswith(confidential_client.redirect_uri + "?error=")
    assert "iss=http%3A%2F%2Flocalhost" in location


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
def test_client_authenticated_but_nothing_else(client, confidential_client, path):
    response = client.post(path, auth=basic(confidential_client))
    assert_handled(response, JSON, 400)
    assert response.get_json()["error"] == "invalid_request"


# --- duplicated parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("method, path, kind", ENDPOINTS, ids=IDS)
def test_every_parameter_twice(client, confidential_client, method, path, kind):
    params = MultiDict()
    for name in PARAMETER_NAMES:
        params.add(name, "one")
        params.add(name, "two")
    params.setlist("client_id", [confidential_client.client_id] * 2)
    assert_handled(send(client, method, path, params), kind, JUNK_STATUS[method, path])


def test_duplicated_parameters_at_the_token_endpoint(client, confidential_client):
    response = client.post(
        "/token",
        data=MultiDict(
            [("grant_type", "client_credentials"), ("grant_type", "client_credentials")]
        ),
        auth=basic(confidential_client),
    )
    assert_handled(response, JSON, 400)
    assert response.get_json()["error"] == "invalid_request"


# --- non-UTF-8 and odd bytes ---------------------------------------------------------------------


RAW = b"&".join(name.encode() + b"=%FF%FE\xff" for name in PARAMETER_NAMES)
RAW_QUERY = "&".join(f"{name}=%FF%FE%C0%80" for name in PARAMETER_NAMES)


@pytest.mark.parametrize("method, path, kind", ENDPOINTS, ids=IDS)
def test_non_utf8_parameters(client, method, path, kind):
    # Refused before any view runs, on every endpoint: nothing mangled reaches a rule.
    if method == "GET":
        response = client.get(f"{path}?{RAW_QUERY}")
    else:
        response = client.post(path, data=RAW, content_type="application/x-www-form-urlencoded")
    assert_handled(response, kind, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"password=%E2%ED%EE&x=1",  # "āīō" in cp1257, percent-encoded
        b"password=\xe2\xed\xee&x=1",  # the same bytes unescaped
    ],
    ids=["escaped", "raw"],
)
def test_a_form_in_another_encoding_gets_a_page_that_says_what_to_do(client, body):
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.mimetype == HTML
    page = response.get_data(as_text=True)
    assert "Nothing was saved" in page and "UTF-8" in page


def test_multipart_fields_that_are_not_utf8_are_refused(client):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\n\xe2\xed\xee\r\n--b--\r\n'
    )
    response = client.post("/login", data=body, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 400 and "Nothing was saved" in response.get_data(as_text=True)


def test_utf8_letters_still_pass(client):
    # Latvian and Russian letters, percent-encoded as browsers send them.
    response = client.post("/login", data={"email": "jānis@example.lv", "password": "ščūļņ"})
    assert response.status_code == 400  # the CSRF check, not the encoding guard
    assert "Nothing was saved" not in response.get_data(as_text=True)


@pytest.mark.parametrize("method, path, kind", ENDPOINTS, ids=IDS)
def test_nul_and_control_characters(client, confidential_client, method, path, kind):
    # NUL is refused up front (400) on every endpoint: PostgreSQL cannot even compare it.
    params = {name: "a\x00b\r\n\x1b" for name in PARAMETER_NAMES}
    assert_handled(send(client, method, path, params), kind, 400)
    params["client_id"] = confidential_client.client_id
    assert_handled(send(client, method, path, params), kind, 400)
    # Control characters without NUL get the endpoint's usual answer to junk.
    params = {name: "a\r\n\x1bb" for name in PARAMETER_NAMES}
    assert_handled(send(client, method, path, params), kind, JUNK_STATUS[method, path])


@pytest.mark.parametrize(
    "value", ['"quoted"', "back\\slash", "ünïcödé", "a\x00b", "%FF", "\ud7ff", "😀"]
)
@pytest.mark.parametrize(
    "name",
    [
        "response_type",
        "redirect_uri",
        "scope",
        "state",
        "prompt",
        "max_age",
        "code_challenge",
        "code_challenge_method",
        "response_mode",
        "nonce",
        "login_hint",
        "ui_locales",
        "acr_values",
        "client_id",
    ],
)
def test_odd_characters_in_each_authorize_parameter(client, confidential_client, name, value):
    params, _ = auth_params(confidential_client, **{name: value})
    response = client.get("/authorize", query_string=params)
    assert_handled(response, HTML)
    if response.status_code == 302:
        # Sent back to the client (never elsewhere) or on to our own login page.
        location = response.headers["Location"]
        assert location.startswith((confidential_client.redirect_uri + "?", "/login?")), location


@pytest.mark.parametrize("value", ['"quoted"', "ünïcödé", "a\x00b", "😀", "x" * 2000])
@pytest.mark.parametrize(
    "name", ["state", "nonce", "login_hint", "ui_locales", "acr_values", "scope", "prompt"]
)
def test_odd_characters_through_a_whole_login(
    client, browser, user, confidential_client, name, value
):
    params, verifier = auth_params(confidential_client, **{name: value})
    response = browser.authorize(params)
    assert_handled(response, HTML)
    if response.status_code == 302:
        location = response.headers["Location"]
        assert location.startswith(confidential_client.redirect_uri + "?"), location
        answer = query(location)
        assert answer["iss"] == "http://localhost"
        if "code" in answer:
            tokens = client.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": answer["code"],
                    "code_verifier": verifier,
                    "redirect_uri": confidential_client.redirect_uri,
                },
                auth=basic(confidential_client),
            )
            assert_handled(tokens, JSON, 200)


@pytest.mark.parametrize("max_age", ["²", "١٢٣", "1e3", "0x10", " 5", "99999999999"])
def test_max_age_must_be_plain_digits(client, confidential_client, max_age):
    params, _ = auth_params(confidential_client, max_age=max_age)
    response = client.get("/authorize", query_string=params)
    assert_handled(response, HTML, 302)
    assert "error=invalid_request" in response.headers["Location"]


@pytest.mark.parametrize("value", ['"quoted"', "ünïcödé", "a\x00b", "x" * 600])
@pytest.mark.parametrize(
    "name",
    ["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id"],
)
def test_odd_characters_in_each_token_parameter(client, confidential_client, name, value):
    data = {
        "grant_type": "authorization_code",
        "code": "c",
        "code_verifier": "v" * 43,
        "redirect_uri": confidential_client.redirect_uri,
        name: value,
    }
    response = client.post("/token", data=data, auth=basic(confidential_client))
    assert_handled(response, JSON, 400)
    expected = "unsupported_grant_type" if name == "grant_type" else "invalid_grant"
    if "\x00" in value:
        expected = "invalid_request"  # refused before any grant looks at it
    assert response.get_json()["error"] == expected


@pytest.mark.parametrize("value", ['"quoted"', "ünïcödé", "a\x00b", "x" * 600])
def test_odd_client_id_in_the_form(client, value):
    for path in ("/token", "/revoke", "/introspect"):
        status = 400 if "\x00" in value else 401  # NUL is refused before client auth
        response = client.post(
            path,
            data={
                "grant_type": "client_credentials",
                "token": "t",
                "client_id": value,
                "client_secret": "s",
            },
        )
        assert_handled(response, JSON, status)
        response = client.post(
            path, data={"grant_type": "client_credentials", "token": "t", "client_id": value}
        )
        assert_handled(response, JSON, status)


# --- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic",
        "Basic ",
        "Basic !!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"a\x00b:c\x00d").decode(),
        "Basic " + base64.b64encode(b"%ZZ:%ZZ").decode(),
        "Basic é",
        "Basic " + base64.b64encode(b":").decode(),
        "Bearer abc",
        "Digest username=x",
    ],
)
@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
def test_malformed_client_credentials_are_401(client, authorization, path):
    response = client.post(
        path,
        data={"grant_type": "client_credentials", "token": "t"},
        headers={"Authorization": authorization},
    )
    assert_handled(response, JSON, 401)
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b'{"grant_type": "client_credentials"}'),
        ("application/json", b"{not json"),
        ("text/plain", b"grant_type=client_credentials"),
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nbroken"),
        ("application/x-www-form-urlencoded", b"%%%=%%%&&&==="),
        ("application/x-www-form-urlencoded; charset=latin-1", b"grant_type=\xe9"),
    ],
)
@pytest.mark.parametrize(
    "path, kind",
    [
        ("/token", JSON),
        ("/revoke", JSON),
        ("/introspect", JSON),
        ("/login", HTML),
        ("/consent", HTML),
        ("/authorize", HTML),
        ("/logout", HTML),
    ],
)
def test_bodies_that_are_not_forms(client, confidential_client, content_type, body, path, kind):
    response = client.post(
        path, data=body, content_type=content_type, auth=basic(confidential_client)
    )
    assert_handled(response, kind)
    if path == "/token":
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("cookie", ["x" * 4000, "\x00", "é", "a;b", ""])
def test_odd_session_cookies(client, confidential_client, cookie):
    client.set_cookie("idp_session", cookie)
    client.set_cookie("idp_csrf", cookie)
    params, _ = auth_params(confidential_client)
    for method, path, kind in ENDPOINTS:
        assert_handled(send(client, method, path, params if "authorize" in path else {}), kind)


@pytest.mark.parametrize("interaction", ["x" * 100, "a\x00b", "ü", "../../etc", ""])
@pytest.mark.parametrize("path", ["/login", "/consent", "/authorize/resume"])
def test_odd_interaction_ids(client, interaction, path):
    response = client.get(path, query_string={"interaction": interaction})
    assert_handled(response, HTML, 200 if path == "/login" and "\x00" not in interaction else 400)


def test_client_assertion_with_an_absurd_expiry_is_invalid_client(client, make_client):
    key = RSAKey.generate_key(2048)
    rp = make_client(
        auth_method="private_key_jwt",
        grant_types=["client_credentials"],
        jwks={"keys": [key.as_dict(private=False)]},
    )
    now = int(time.time())
    for exp in (10**12, 2**62):
        value = jwt.encode(
            {"alg": "RS256"},
            {
                "iss": rp.client_id,
                "sub": rp.client_id,
                "aud": TOKEN_URL,
                "exp": exp,
                "jti": secrets.token_urlsafe(8),
                "iat": now,
            },
            key,
            algorithms=["RS256"],
        )
        response = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion": value,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
        )
        assert_handled(response, JSON, 401)
        assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "assertion",
    [
        "garbage",
        "a.b.c",
        "..",
        "e30.e30.",
        "x" * 9000,
        "eyJhbGciOiJSUzI1NiJ9.W10.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOjF9.c2ln",
        "eyJhbGciOiJSUzI1NiJ9./w.c2ln",
    ],
)
def test_malformed_client_assertions_are_invalid_client(client, assertion):
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        },
    )
    assert_handled(response, JSON, 401)
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("token", ["a\x00b", "x" * 20000, "é", "..", "e30.e30.e30"])
def test_odd_bearer_tokens(client, token):
    for method in ("GET", "POST"):
        response = client.open(
            "/userinfo", method=method, headers={"Authorization": f"Bearer {token}"}
        )
        assert_handled(response, JSON, 401)


def test_head_and_options_are_handled(client):
    for method, path, _kind in ENDPOINTS:
        assert client.open(path, method="OPTIONS").status_code < 500
        if method == "GET":
            assert client.open(path, method="HEAD").status_code < 500


@pytest.mark.parametrize(
    "email, password",
    [
        ("a\x00b@example.lv", "pw"),
        ("janis.berzins@example.lv\x00", "x\x00y"),
        ("é" * 400, "p" * 2000),
        ('"@"', "\r\n"),
    ],
)
def test_odd_login_form_values_with_a_valid_csrf_token(client, user, email, password):
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": email,
            "password": password,
        },
    )
    assert_handled(response, HTML)
    assert response.status_code in (400, 401)
    assert not any(
        cookie.startswith("idp_session=") for cookie in response.headers.getlist("Set-Cookie")
    )


def test_client_assertion_with_a_nul_in_its_jti_is_invalid_client(client, make_client):
    key = RSAKey.generate_key(2048)
    rp = make_client(
        auth_method="private_key_jwt",
        grant_types=["client_credentials"],
        jwks={"keys": [key.as_dict(private=False)]},
    )
    now = int(time.time())
    for jti in ("a\x00b", "é" * 10):
        value = jwt.encode(
            {"alg": "RS256"},
            {
                "iss": rp.client_id,
                "sub": rp.client_id,
                "aud": TOKEN_URL,
                "exp": now + 60,
                "jti": jti,
                "iat": now,
            },
            key,
            algorithms=["RS256"],
        )
        response = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion": value,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
        )
        assert_handled(response, JSON)
        if "\x00" in jti:
            assert response.status_code == 401
            assert response.get_json()["error"] == "invalid_client"


def test_error_pages_lead_on(client):
    for response in (client.get("/no-such-page"), client.get("/login?x=%E2%ED")):
        assert response.status_code in (400, 404)
        assert 'href="/login"' in response.get_data(as_text=True)
