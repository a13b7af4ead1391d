"""The admin CLI: tables for people, --json for scripts, one clear line on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import Result
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.models import (
    AuthorizationCode,
    Client,
    ConsentGrant,
    Customer,
    RefreshToken,
    TokenFamily,
    User,
)
from idp.security import hash_secret
from tests.conftest import Browser, RegisteredClient, auth_params, query

REDIRECT = "https://rp.example.lv/cb"


def invoke(runner: FlaskCliRunner, *args: str) -> Result:
    return runner.invoke(args=list(args))


def ok_json(runner: FlaskCliRunner, *args: str) -> Any:
    result = invoke(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *words: str) -> str:
    """Non-zero exit, nothing on stdout, exactly one line on stderr, no traceback."""
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def count(db: Session, model: type) -> int:
    total = db.scalar(select(func.count()).select_from(model))
    db.commit()  # end the read: on SQLite it holds the write lock the next command needs
    return int(total or 0)


def add_client(runner: FlaskCliRunner, *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = ok_json(
        runner, "clients", "add", "--name", "Invoice app", "--redirect-uri", REDIRECT, *extra
    )
    return out


# --- clients ----------------------------------------------------------------------------------


def test_clients_add_prints_a_table_with_the_secret_once(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(runner, "clients", "add", "--name", "Invoice app", "--redirect-uri", REDIRECT)
    assert result.exit_code == 0, result.output
    rows = {
        key: value.strip()
        for key, _sep, value in (line.partition(" ") for line in result.stdout.splitlines())
    }
    assert rows["name"] == "Invoice app"
    assert rows["redirect_uris"] == REDIRECT
    secret = rows["client_secret"]
    assert "not shown again" in result.stderr

    row = db.scalar(select(Client).where(Client.client_id == rows["client_id"]))
    db.commit()
    assert row is not None
    assert row.secret_hash == hash_secret(secret)
    # Never again: neither `show` nor `list` prints it (nor its hash).
    for args in (
        ("clients", "show", rows["client_id"]),
        ("clients", "list"),
        ("clients", "show", rows["client_id"], "--json"),
    ):
        shown = invoke(runner, *args)
        assert shown.exit_code == 0, shown.output
        assert secret not in shown.output
        assert row.secret_hash not in shown.output


def test_clients_add_json_for_scripts(runner: FlaskCliRunner) -> None:
    out = add_client(
        runner, "--scope", "openid,email", "--first-party", "--audience", "https://api.example.lv"
    )
    assert out["name"] == "Invoice app"
    assert out["redirect_uris"] == [REDIRECT]
    assert out["scopes"] == ["openid", "email"]
    assert out["first_party"] is True
    assert out["audience"] == "https://api.example.lv"
    assert out["auth_method"] == "client_secret_basic"
    assert len(out["client_secret"]) >= 32


def test_a_public_client_gets_no_secret(runner: FlaskCliRunner) -> None:
    out = ok_json(
        runner,
        "clients",
        "add",
        "--name",
        "Mobile",
        "--auth-method",
        "none",
        "--redirect-uri",
        "http://127.0.0.1:8765/cb",
    )
    assert out["client_secret"] is None


def test_clients_add_refuses_a_bad_redirect_uri_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(
        runner, "clients", "add", "--name", "Bad", "--redirect-uri", "http://rp.example.lv/cb"
    )
    assert_one_line_error(result, "redirect URI", "http://rp.example.lv/cb")
    assert count(db, Client) == 0


def test_clients_add_refuses_an_unknown_scope_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(
        runner,
        "clients",
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "openid,invoices.delete",
    )
    assert_one_line_error(result, "unknown scope", "invoices.delete")
    assert count(db, Client) == 0


def test_clients_add_refuses_a_client_id_that_exists(runner: FlaskCliRunner) -> None:
    add_client(runner, "--client-id", "invoices")
    result = invoke(
        runner,
        "clients",
        "add",
        "--name",
        "Again",
        "--redirect-uri",
        REDIRECT,
        "--client-id",
        "invoices",
    )
    assert_one_line_error(result, "invoices", "already exists")


def test_clients_add_refuses_a_client_id_that_does_not_fit_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(
        runner,
        "clients",
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        REDIRECT,
        "--client-id",
        "x" * 100,
    )
    assert_one_line_error(result, "client id")
    assert count(db, Client) == 0


def test_clients_list_shows_every_client(runner: FlaskCliRunner) -> None:
    assert invoke(runner, "clients", "list").stdout.strip() == "(none)"
    first = add_client(runner)
    second = add_client(runner, "--client-id", "meters")
    table = invoke(runner, "clients", "list")
    assert table.exit_code == 0
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["CLIENT_ID", "NAME", "AUTH_METHOD", "GRANT_TYPES", "FIRST_PARTY"]
    assert [line.split()[0] for line in lines] == [first["client_id"], "meters"]
    listed = ok_json(runner, "clients", "list")
    assert [c["client_id"] for c in listed] == [first["client_id"], second["client_id"]]


def test_clients_show_one_client_and_a_clear_error_for_an_unknown_one(
    runner: FlaskCliRunner,
) -> None:
    created = add_client(runner)
    shown = ok_json(runner, "clients", "show", created["client_id"])
    assert shown["client_id"] == created["client_id"]
    assert "client_secret" not in shown
    assert_one_line_error(invoke(runner, "clients", "show", "nope"), "no client", "nope")


def test_clients_remove_with_yes(runner: FlaskCliRunner, db: Session) -> None:
    created = add_client(runner)
    removed = invoke(runner, "clients", "remove", created["client_id"], "--yes")
    assert removed.exit_code == 0, removed.output
    assert created["client_id"] in removed.stdout
    assert count(db, Client) == 0
    assert_one_line_error(
        invoke(runner, "clients", "remove", created["client_id"], "--yes"), "no client"
    )


def test_clients_remove_takes_its_consents_codes_and_tokens_with_it(
    runner: FlaskCliRunner,
    client: FlaskClient,
    browser: Browser,
    db: Session,
    user: User,
    make_client: Callable[..., RegisteredClient],
) -> None:
    rp = make_client(name="Invoice app")
    params, verifier = auth_params(rp)
    answer = query(browser.authorize(params, consent="allow").headers["Location"])
    token = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(rp.client_id, rp.secret),
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    held = (ConsentGrant, AuthorizationCode, TokenFamily, RefreshToken)
    assert all(count(db, model) == 1 for model in held)

    removed = invoke(runner, "clients", "remove", rp.client_id, "--yes")
    assert removed.exit_code == 0, removed.output
    assert {model.__name__: count(db, model) for model in held} == dict.fromkeys(
        (model.__name__ for model in held), 0
    )
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token.get_json()["refresh_token"]},
        auth=(rp.client_id, rp.secret),
    )
    assert refreshed.status_code == 401


def test_clients_remove_asks_first_without_yes(runner: FlaskCliRunner, db: Session) -> None:
    created = add_client(runner)
    kept = runner.invoke(args=["clients", "remove", created["client_id"]], input="n\n")
    assert kept.exit_code != 0
    assert count(db, Client) == 1


def _client_credentials(client: FlaskClient, client_id: str, secret: str) -> int:
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return response.status_code


def test_rotate_secret_replaces_the_secret_at_once(
    runner: FlaskCliRunner, client: FlaskClient
) -> None:
    created = add_client(
        runner, "--grant-type", "authorization_code,client_credentials", "--scope", "openid,email"
    )
    old = created["client_secret"]
    assert _client_credentials(client, created["client_id"], old) == 200

    rotated = ok_json(runner, "clients", "rotate-secret", created["client_id"])
    assert rotated["client_id"] == created["client_id"]
    assert rotated["client_secret"] != old
    assert _client_credentials(client, created["client_id"], old) == 401
    assert _client_credentials(client, created["client_id"], rotated["client_secret"]) == 200


def test_rotate_secret_of_a_public_client_is_a_clear_error(runner: FlaskCliRunner) -> None:
    created = ok_json(
        runner,
        "clients",
        "add",
        "--name",
        "Mobile",
        "--auth-method",
        "none",
        "--redirect-uri",
        "http://127.0.0.1:8765/cb",
    )
    assert_one_line_error(
        invoke(runner, "clients", "rotate-secret", created["client_id"]), "not a secret"
    )


# --- users ----------------------------------------------------------------------------------


def test_users_create_with_a_password_option(
    runner: FlaskCliRunner, db: Session, customer: Customer
) -> None:
    out = ok_json(
        runner,
        "users",
        "create",
        "--email",
        "Anna.Liepa@Example.lv",
        "--name",
        "Anna Liepa",
        "--customer",
        customer.number,
        "--password",
        "a long enough password",
    )
    assert out["email"] == "Anna.Liepa@Example.lv"
    assert out["customer"] == customer.number
    user = db.scalar(select(User).where(User.subject == out["sub"]))
    assert user is not None
    assert user.email == "anna.liepa@example.lv"
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert [m.customer_id for m in user.memberships] == [customer.id]
    assert user.memberships[0].role == "contractor"
    db.commit()


def test_users_create_refuses_a_duplicate_email_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    ok_json(
        runner,
        "users",
        "create",
        "--email",
        "anna@example.lv",
        "--name",
        "Anna",
        "--password",
        "a long enough password",
    )
    # The same address typed differently is the same account.
    result = invoke(
        runner,
        "users",
        "create",
        "--email",
        " ANNA@Example.LV",
        "--name",
        "Anna",
        "--password",
        "a long enough password",
    )
    assert_one_line_error(result, "already exists")
    assert count(db, User) == 1


def test_users_create_refuses_an_unknown_customer_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(
        runner,
        "users",
        "create",
        "--email",
        "anna@example.lv",
        "--name",
        "Anna",
        "--customer",
        "999999",
        "--password",
        "a long enough password",
    )
    assert_one_line_error(result, "no customer", "999999")
    assert count(db, User) == 0


def test_users_create_refuses_a_bad_email_or_a_short_password(
    runner: FlaskCliRunner, db: Session
) -> None:
    assert_one_line_error(
        invoke(
            runner,
            "users",
            "create",
            "--email",
            "anna",
            "--name",
            "Anna",
            "--password",
            "a long enough password",
        ),
        "e-mail",
    )
    assert_one_line_error(
        invoke(
            runner,
            "users",
            "create",
            "--email",
            "anna@example.lv",
            "--name",
            "Anna",
            "--password",
            "short",
        ),
        "12 characters",
    )
    assert count(db, User) == 0


def test_users_create_refuses_a_name_that_does_not_fit_in_one_line(
    runner: FlaskCliRunner, db: Session
) -> None:
    result = invoke(
        runner,
        "users",
        "create",
        "--email",
        "anna@example.lv",
        "--name",
        "A" * 256,
        "--password",
        "a long enough password",
    )
    assert_one_line_error(result, "name")
    assert count(db, User) == 0


# --- database ----------------------------------------------------------------------------------


def test_db_upgrade_is_idempotent(runner: FlaskCliRunner, db: Session) -> None:
    for _run in range(2):
        result = invoke(runner, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "database is up to date" in result.stdout
        assert "created signing key" not in result.stdout  # the run's keys already exist
    assert count(db, Client) == 0
