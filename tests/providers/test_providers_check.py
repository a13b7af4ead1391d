"""`idp providers check` against real upstreams: the npm `oidc-provider` peer (a real OP,
nobody here wrote it) and our hostile OP. The check must tell a refused client secret
from a good one (a made-up code at the token endpoint: `invalid_client` vs
`invalid_grant`), and warn when discovery does not list a claim or scope we rely on.
`add` and `show` print the redirect URI the upstream must register."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from flask import Flask, url_for
from flask.testing import FlaskCliRunner

from idp.upstream_providers import services as provider_services
from tests.peers.hostile_op import HostileOP
from tests.peers.oidc_peer import OidcPeer

REFUSED = "client authentication refused: check the client id and secret"


def add(
    runner: FlaskCliRunner, *, name: str, base_url: str, client_id: str, secret: str, **options: Any
) -> Result:
    args = [
        "providers",
        "add",
        "--name",
        name,
        "--kind",
        "oidc",
        "--display-name",
        name,
        "--base-url",
        base_url,
        "--client-id",
        client_id,
        "--client-secret",
        secret,
    ]
    for key, value in options.items():
        args += ["--option", f"{key}={json.dumps(value)}"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    return result


def check(runner: FlaskCliRunner, name: str, *extra: str) -> Result:
    return runner.invoke(args=["providers", "check", name, "--timeout", "5", *extra])


def test_the_right_secret_is_ok(runner: FlaskCliRunner, oidc_peer: OidcPeer) -> None:
    add(
        runner,
        name="peerbank",
        base_url=oidc_peer.issuer,
        client_id=oidc_peer.client_id,
        secret=oidc_peer.client_secret,
        scopes=["openid", "profile"],
    )
    result = check(runner, "peerbank")
    assert (result.exit_code, result.output) == (0, "peerbank: ok\n")
    out = json.loads(check(runner, "peerbank", "--json").stdout)
    assert out == {
        "name": "peerbank",
        "ok": True,
        "problems": [],
        "warnings": [],
        "redirect_uri": "http://localhost/upstream/callback/peerbank",
    }


def test_a_wrong_secret_fails_the_check(runner: FlaskCliRunner, oidc_peer: OidcPeer) -> None:
    add(
        runner,
        name="peerbank",
        base_url=oidc_peer.issuer,
        client_id=oidc_peer.client_id,
        secret="not-the-secret",
        scopes=["openid", "profile"],
    )
    result = check(runner, "peerbank")
    assert result.exit_code == 1
    assert result.output.startswith(f"peerbank: {REFUSED}"), result.output
    assert "invalid_client" in result.output and "ok" not in result.output.split()
    assert "not-the-secret" not in result.output


def test_client_secret_post_is_checked_the_same_way(
    runner: FlaskCliRunner, oidc_peer: OidcPeer
) -> None:
    for name, secret in (("post-good", oidc_peer.client_secret), ("post-bad", "wrong")):
        add(
            runner,
            name=name,
            base_url=oidc_peer.issuer,
            client_id=oidc_peer.post_client_id,
            secret=secret,
            scopes=["openid", "profile"],
            token_endpoint_auth="client_secret_post",
        )
    assert check(runner, "post-good").output == "post-good: ok\n"
    bad = check(runner, "post-bad")
    assert bad.exit_code == 1 and REFUSED in bad.output


def test_an_unlisted_scope_or_claim_is_a_warning(
    runner: FlaskCliRunner, oidc_peer: OidcPeer
) -> None:
    add(
        runner,
        name="peerbank",
        base_url=oidc_peer.issuer,
        client_id=oidc_peer.client_id,
        secret=oidc_peer.client_secret,
        scopes=["openid", "profile", "bank:personal_code"],
        personal_code_claim="personas_kods",
    )
    result = check(runner, "peerbank")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "peerbank: ok (2 warnings)"
    assert any(
        line.startswith(
            "peerbank: warning: the personal-code claim 'personas_kods' "
            "is not in the upstream's claims_supported"
        )
        for line in lines
    )
    assert any("bank:personal_code" in line and "scopes_supported" in line for line in lines)
    assert check(runner, "peerbank", "--strict").exit_code == 1
    out = json.loads(check(runner, "peerbank", "--json").stdout)
    assert out["ok"] is True and len(out["warnings"]) == 2


def test_without_claim_lists_the_check_cannot_tell(
    runner: FlaskCliRunner, hostile_op: HostileOP
) -> None:
    # The hostile OP's discovery has neither claims_supported nor scopes_supported.
    add(
        runner,
        name="hostile",
        base_url=hostile_op.issuer,
        client_id=hostile_op.client_id,
        secret=hostile_op.client_secret,
    )
    result = check(runner, "hostile")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert len(warnings) == 2 and all("cannot tell" in w for w in warnings)
    assert "'personal_code', 'given_name', 'family_name'" in warnings[0]
    assert hostile_op.hits["/token"] == 1


@pytest.mark.parametrize(
    "behaviour, exit_code, expected",
    [
        (
            "token_500_always",
            1,
            "peer: the token endpoint answered HTTP 500 without an OAuth "
            "error to a made-up code (expected HTTP 400 invalid_grant)",
        ),
        (
            "token_invalid_request_always",
            0,
            "peer: warning: cannot tell whether the client id and secret are accepted: the token "
            "endpoint answered HTTP 400 invalid_request to a made-up code (expected invalid_grant)",
        ),
    ],
)
def test_other_token_answers_are_reported_as_they_came(
    runner: FlaskCliRunner, hostile_op: HostileOP, behaviour: str, exit_code: int, expected: str
) -> None:
    hostile_op.behaviour = behaviour
    add(
        runner,
        name="peer",
        base_url=hostile_op.issuer,
        client_id=hostile_op.client_id,
        secret=hostile_op.client_secret,
    )
    result = check(runner, "peer")
    assert result.exit_code == exit_code
    assert expected in result.output.splitlines(), result.output


def test_add_and_show_print_the_redirect_uri(runner: FlaskCliRunner) -> None:
    result = add(
        runner,
        name="swedbank",
        base_url="https://login.bank.example.lv",
        client_id="portal-idp",
        secret="s3cret-from-the-bank",
    )
    uri = "http://localhost/upstream/callback/swedbank"
    assert f"Register this redirect URI at the upstream: {uri}" in result.output
    shown = runner.invoke(args=["providers", "show", "swedbank"])
    assert f"redirect_uri   {uri}" in shown.output.splitlines()
    out = json.loads(runner.invoke(args=["providers", "show", "swedbank", "--json"]).stdout)
    assert out["redirect_uri"] == uri


def test_the_redirect_uri_is_the_callback_route(app: Flask) -> None:
    settings = app.config["IDP_SETTINGS"]
    with app.test_request_context():
        route = settings.issuer + url_for("upstream.callback", provider="swedbank")
    assert provider_services.redirect_uri(settings, "swedbank") == route
