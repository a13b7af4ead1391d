"""`idp providers`: admins configure the upstream banks and eSignature; the client secret is
stored encrypted and never shown; bad input is one line and a non-zero exit; `check` asks
the connector what is wrong, against a closed port and against the demo upstreams served
for real."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from idp.demo import bank_sim
from idp.demo.seed import DEMO_EPARAKSTS_CLIENT_ID, DEMO_EPARAKSTS_SECRET
from idp.models import UpstreamProviderConfig
from idp.settings import load_settings
from idp.upstream_providers import services as provider_services
from providers import registry
from tests.conftest import free_loopback_port
from tests.integration.test_cli import assert_one_line_error

SECRET = "bank-issued-secret-Zx81"  # noqa: S105 (test data)


def invoke(runner: FlaskCliRunner, *args: str, **kwargs: Any) -> Result:
    return runner.invoke(args=list(args), **kwargs)


def add(
    runner: FlaskCliRunner,
    *extra: str,
    name: str = "swedbank",
    kind: str = "oidc",
    base_url: str = "https://login.bank.example.lv",
    secret: str | None = SECRET,
    client_id: str = "portal-idp",
) -> Result:
    args = [
        "providers",
        "add",
        "--name",
        name,
        "--kind",
        kind,
        "--display-name",
        "Swedbank",
        "--base-url",
        base_url,
        "--client-id",
        client_id,
        *extra,
    ]
    if secret is not None:
        args += ["--client-secret", secret]
    return invoke(runner, *args)


def ok_json(runner: FlaskCliRunner, *args: str) -> Any:
    result = invoke(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_stores_the_secret_encrypted_and_never_shows_it(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = add(
        runner,
        "--option",
        "personal_code_claim=personal_code",
        "--option",
        'acr_map={"urn:bank:high": "substantial"}',
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["client_secret"] == "set" and SECRET not in result.output
    assert out["options"] == {
        "personal_code_claim": "personal_code",
        "acr_map": {"urn:bank:high": "substantial"},
    }
    assert (out["kind"], out["method"], out["enabled"]) == ("oidc", "bank", True)

    raw = db.execute(text("SELECT * FROM upstream_providers")).one()
    db.commit()
    assert not any(SECRET.encode() in (v if isinstance(v, bytes) else str(v).encode()) for v in raw)
    shown = invoke(runner, "providers", "show", "swedbank")
    assert shown.exit_code == 0 and "client_secret  set" in shown.output
    assert SECRET not in shown.output
    # Decrypted only for the connector.
    row = db.scalar(select(UpstreamProviderConfig))
    assert row is not None
    config = provider_services.connector_config(runner.app.config["IDP_SETTINGS"], row)
    db.commit()
    assert config.client_secret == SECRET and config.kind == "oidc"


def test_the_secret_is_prompted_for_hidden_and_twice(runner: FlaskCliRunner) -> None:
    result = invoke(
        runner,
        "providers",
        "add",
        "--name",
        "citadele",
        "--kind",
        "oidc",
        "--display-name",
        "Citadele",
        "--base-url",
        "https://id.citadele.example",
        "--client-id",
        "idp",
        input=f"{SECRET}\n{SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert ok_json(runner, "providers", "show", "citadele")["client_secret"] == "set"


def test_list_show_enable_disable_remove(runner: FlaskCliRunner) -> None:
    assert add(runner).exit_code == 0
    assert (
        add(runner, "--disabled", "--method", "esignature", name="smart-id", kind="oidc").exit_code
        == 0
    )
    listed = ok_json(runner, "providers", "list")
    assert [(p["name"], p["enabled"]) for p in listed] == [("smart-id", False), ("swedbank", True)]
    table = invoke(runner, "providers", "list").output
    assert "swedbank" in table and "client_secret" not in table and SECRET not in table

    assert invoke(runner, "providers", "enable", "smart-id").output.strip() == (
        "provider smart-id enabled"
    )
    assert invoke(runner, "providers", "disable", "swedbank").exit_code == 0
    assert ok_json(runner, "providers", "show", "swedbank")["enabled"] is False
    assert ok_json(runner, "providers", "show", "smart-id")["enabled"] is True

    removed = invoke(runner, "providers", "remove", "swedbank", "--yes")
    assert removed.exit_code == 0 and "removed provider swedbank" in removed.output
    assert [p["name"] for p in ok_json(runner, "providers", "list")] == ["smart-id"]
    assert_one_line_error(invoke(runner, "providers", "show", "swedbank"), "no provider")


def test_remove_asks_first(runner: FlaskCliRunner) -> None:
    assert add(runner).exit_code == 0
    assert invoke(runner, "providers", "remove", "swedbank", input="n\n").exit_code != 0
    assert ok_json(runner, "providers", "show", "swedbank")["name"] == "swedbank"


def test_enabled_providers_lists_banks_then_esignature_by_display_name(
    runner: FlaskCliRunner, app: Flask, db: Session
) -> None:
    settings = app.config["IDP_SETTINGS"]
    for name, kind, method, display in (
        ("zeta", "oidc", "bank", "Zeta bank"),
        ("epar", "eparaksts", "esignature", "eParaksts"),
        ("alfa", "oidc", "bank", "Alfa bank"),
        ("off", "oidc", "bank", "Aaa (disabled)"),
    ):
        provider_services.add_provider(
            db,
            settings,
            name=name,
            kind=kind,
            method=method,
            display_name=display,
            base_url="https://x.example",
            client_id="idp",
            client_secret="s",
            options={},
            enabled=name != "off",
        )
    db.commit()
    shown = [(c.name, c.method) for c in provider_services.enabled_providers(db, settings)]
    db.commit()
    assert shown == [("alfa", "bank"), ("zeta", "bank"), ("epar", "esignature")]


def test_a_wrong_key_encryption_key_is_a_clear_error(app: Flask, db: Session) -> None:
    settings = app.config["IDP_SETTINGS"]
    row = provider_services.add_provider(
        db,
        settings,
        name="swedbank",
        kind="oidc",
        method="bank",
        display_name="Swedbank",
        base_url="https://login.bank.example.lv",
        client_id="idp",
        client_secret=SECRET,
    )
    db.commit()
    other = load_settings({"key_encryption_key": "A" * 43 + "="})
    with pytest.raises(provider_services.ProviderError, match="key_encryption_key"):
        provider_services.connector_config(other, row)
    # The login page leaves it out instead of failing.
    assert provider_services.enabled_providers(db, other) == []
    db.commit()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"name": "Swed_Bank"}, ("name", "lower-case")),
        ({"name": "x"}, ("name",)),
        ({"kind": "saml"}, ("kind", "oidc, eparaksts")),
        ({"kind": "eparaksts", "extra": ("--method", "bank")}, ("eparaksts", "esignature")),
        ({"extra": ("--method", "phone")}, ("method",)),
        ({"base_url": "http://bank.example.lv"}, ("https",)),
        ({"base_url": "ftp://bank.example.lv"}, ("https",)),
        ({"base_url": "https://bank.example.lv/?x=1"}, ("query",)),
        ({"base_url": "https://bank.example.lv/#top"}, ("fragment",)),
        ({"secret": ""}, ("secret",)),
        ({"extra": ("--option", "no-equals-sign")}, ("key=value",)),
        ({"extra": ("--option", "=value")}, ("key=value",)),
        ({"extra": ("--option", "no_such_option=1")}, ("oidc connector refuses", "no_such_option")),
        ({"extra": ("--option", "acr_map=[1]")}, ("connector refuses", "acr_map")),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    runner: FlaskCliRunner, db: Session, extra: dict[str, Any], words: tuple[str, ...]
) -> None:
    args = dict(extra)
    more = args.pop("extra", ())
    assert_one_line_error(add(runner, *more, **args), *words)
    assert db.scalar(select(UpstreamProviderConfig)) is None
    db.commit()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ("not valid JSON",)),
        ('["a", "list"]', ("JSON object",)),
    ],
)
def test_a_bad_options_file_is_one_line(
    runner: FlaskCliRunner, tmp_path: Path, content: str, words: tuple[str, ...]
) -> None:
    path = tmp_path / "options.json"
    path.write_text(content)
    assert_one_line_error(add(runner, "--options-json", str(path)), *words)


def test_options_from_a_file_and_pairs_merge(runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"personal_code_claim": "serial_number", "leeway": 30}))
    result = add(
        runner,
        "--options-json",
        str(path),
        "--option",
        "leeway=10",
        "--option",
        'scopes=["openid", "profile"]',
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["options"] == {
        "personal_code_claim": "serial_number",
        "leeway": 10,
        "scopes": ["openid", "profile"],
    }


def test_http_is_accepted_on_loopback_only(runner: FlaskCliRunner) -> None:
    assert add(runner, base_url="http://127.0.0.1:9000/bank").exit_code == 0
    assert add(runner, name="local", base_url="http://localhost:9000").exit_code == 0


def test_a_duplicate_name_is_refused(runner: FlaskCliRunner) -> None:
    assert add(runner).exit_code == 0
    assert_one_line_error(add(runner), "already exists")


def test_unknown_names_are_one_line(runner: FlaskCliRunner) -> None:
    for command in ("show", "remove", "enable", "disable", "check"):
        assert_one_line_error(invoke(runner, "providers", command, "nobody"), "no provider")


# --- check ---------------------------------------------------------------------------------------


@contextmanager
def served(app: Flask) -> Iterator[None]:
    """`app` over real HTTP on its issuer's loopback port, in a thread of this process."""
    port = int(app.config["IDP_SETTINGS"].issuer.rsplit(":", 1)[1])
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def demo_server(make_app: Callable[..., Flask]) -> Iterator[str]:
    """A demo-mode IdP (with its DEMO bank and eParaksts) served for real; its issuer."""
    issuer = f"http://127.0.0.1:{free_loopback_port()}"
    with served(make_app(mode="demo", issuer=issuer)):
        yield issuer


def test_check_reports_an_upstream_that_does_not_answer(runner: FlaskCliRunner) -> None:
    closed = f"http://127.0.0.1:{free_loopback_port()}"
    assert add(runner, name="down", kind="eparaksts", base_url=closed).exit_code == 0
    result = invoke(runner, "providers", "check", "down", "--timeout", "2")
    assert result.exit_code == 1
    assert result.output.startswith("down: ") and "ok" not in result.output.split()
    out = json.loads(
        invoke(runner, "providers", "check", "down", "--timeout", "2", "--json").stdout
    )
    assert out["ok"] is False and out["problems"]


def test_check_oidc_reports_a_closed_port(runner: FlaskCliRunner) -> None:
    pytest.importorskip("providers.oidc")
    closed = f"http://127.0.0.1:{free_loopback_port()}"
    assert add(runner, name="down", base_url=closed).exit_code == 0
    result = invoke(runner, "providers", "check", "down", "--timeout", "2", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"]


def test_check_passes_against_the_demo_eparaksts(runner: FlaskCliRunner, demo_server: str) -> None:
    base_url = f"{demo_server}/demo-eparaksts"
    assert (
        add(
            runner,
            name="demo-eparaksts",
            kind="eparaksts",
            base_url=base_url,
            client_id=DEMO_EPARAKSTS_CLIENT_ID,
            secret=DEMO_EPARAKSTS_SECRET,
        ).exit_code
        == 0
    )
    result = invoke(runner, "providers", "check", "demo-eparaksts")
    assert (result.exit_code, result.output.strip()) == (0, "demo-eparaksts: ok"), result.output
    assert (
        add(
            runner,
            name="wrong-secret",
            kind="eparaksts",
            base_url=base_url,
            client_id=DEMO_EPARAKSTS_CLIENT_ID,
            secret="nope",
        ).exit_code
        == 0
    )
    result = invoke(runner, "providers", "check", "wrong-secret")
    assert result.exit_code == 1
    assert result.output.startswith(
        "wrong-secret: client authentication refused: check the client id and secret"
    ), result.output
    shown = json.loads(invoke(runner, "providers", "show", "wrong-secret", "--json").stdout)
    assert shown["redirect_uri"] == "http://localhost/upstream/callback/wrong-secret"


def test_check_passes_against_the_demo_bank(runner: FlaskCliRunner, demo_server: str) -> None:
    pytest.importorskip("providers.oidc")
    result = add(
        runner,
        "--option",
        "personal_code_claim=personal_code",
        "--option",
        "acr_map=" + json.dumps({bank_sim.ACR: "substantial"}),
        name="demo-bank",
        base_url=f"{demo_server}/demo-bank",
        client_id=bank_sim.CLIENT_ID,
        secret=bank_sim.CLIENT_SECRET,
    )
    assert result.exit_code == 0, result.output
    result = invoke(runner, "providers", "check", "demo-bank", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "name": "demo-bank",
        "ok": True,
        "problems": [],
        "warnings": [],
        "redirect_uri": "http://localhost/upstream/callback/demo-bank",
    }
    result = add(
        runner,
        "--option",
        "acr_map=" + json.dumps({bank_sim.ACR: "substantial"}),
        name="demo-bank-bad",
        base_url=f"{demo_server}/demo-bank",
        client_id=bank_sim.CLIENT_ID,
        secret="not-the-demo-secret",
    )
    result = invoke(runner, "providers", "check", "demo-bank-bad")
    assert result.exit_code == 1
    assert result.output.startswith(
        "demo-bank-bad: client authentication refused: check the client id and secret"
    ), result.output


def test_a_changed_configuration_builds_a_new_connector(app: Flask, db: Session) -> None:
    pytest.importorskip("providers.eparaksts")
    settings = app.config["IDP_SETTINGS"]
    row = provider_services.add_provider(
        db,
        settings,
        name="epar",
        kind="eparaksts",
        method="esignature",
        display_name="eParaksts",
        base_url="https://eidas.example.lv",
        client_id="idp",
        client_secret="one",
    )
    config = provider_services.connector_config(settings, row)
    first = registry.build_connector(config, 5)
    assert registry.build_connector(provider_services.connector_config(settings, row), 5) is first
    row.client_secret_encrypted = Fernet(settings.effective_key_encryption_key).encrypt(b"two")
    assert (
        registry.build_connector(provider_services.connector_config(settings, row), 5) is not first
    )
    db.rollback()
