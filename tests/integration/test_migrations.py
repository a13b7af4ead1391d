"""Migrations are the schema's only source: they go up and down on an empty database, and
what they build is exactly what the models describe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool

import idp.models  # noqa: F401  (registers every table on Base.metadata)
from idp.cli import alembic_config
from idp.db import Base
from tests.conftest import fresh_database


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path) as url:
        yield url


def table_names(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again_on_an_empty_database(empty_url: str) -> None:
    config = alembic_config(empty_url)
    model_tables = set(Base.metadata.tables)
    head = ScriptDirectory.from_config(config).get_current_head()

    command.upgrade(config, "head")
    assert table_names(empty_url) == model_tables | {"alembic_version"}
    assert current_revision(empty_url) == head

    command.downgrade(config, "base")
    assert table_names(empty_url) == {"alembic_version"}
    assert current_revision(empty_url) is None

    command.upgrade(config, "head")
    assert table_names(empty_url) == model_tables | {"alembic_version"}
    assert current_revision(empty_url) == head


def test_every_revision_steps_down_and_up_one_at_a_time(empty_url: str) -> None:
    config = alembic_config(empty_url)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions("base", "heads"))
    command.upgrade(config, "head")
    for _revision in revisions:
        command.downgrade(config, "-1")
    assert current_revision(empty_url) is None
    for _revision in revisions:
        command.upgrade(config, "+1")
    assert table_names(empty_url) == set(Base.metadata.tables) | {"alembic_version"}


def test_the_models_match_the_migrations(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "head")
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "\n".join(str(d) for d in differences)


def test_existing_memberships_keep_their_rights_through_0004(empty_url: str) -> None:
    """Contractors made before memberships had rights still hold every right (by role),
    and their grant time is when the membership was made."""
    import datetime as dt
    import json

    from sqlalchemy import text

    from idp.memberships.rights import ALL_RIGHTS, effective_rights

    config = alembic_config(empty_url)
    command.upgrade(config, "0003")
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    made = dt.datetime(2026, 1, 2, 3, 4, 5)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customers (id, number, kind, name, created_at, updated_at) "
                    "VALUES (1, '100', 'person', 'A', :t, :t)"
                ),
                {"t": made},
            )
            conn.execute(
                text(
                    "INSERT INTO users (id, subject, email, email_display, email_verified, name, "
                    "status, created_at, legacy, contact_confirmed) VALUES (1, 's', 'a@x.lv', "
                    "'a@x.lv', true, 'A', 'active', :t, false, true)"
                ),
                {"t": made},
            )
            conn.execute(
                text(
                    "INSERT INTO memberships (id, user_id, customer_id, role, state, created_at) "
                    "VALUES (1, 1, 1, 'contractor', 'active', :t)"
                ),
                {"t": made},
            )
        command.upgrade(config, "head")
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT role, rights, state, granted_at FROM memberships")
            ).one()
    finally:
        engine.dispose()
    rights = row.rights if isinstance(row.rights, list) else json.loads(row.rights)
    assert rights == []
    granted_at = (
        row.granted_at
        if isinstance(row.granted_at, dt.datetime)
        else dt.datetime.fromisoformat(str(row.granted_at))
    )
    assert granted_at.replace(tzinfo=None) == made
    now = dt.datetime.now(dt.UTC)
    assert effective_rights(row.role, rights, row.state, None, None, now) == ALL_RIGHTS


def test_0006_keeps_the_newest_of_repeated_grants_without_a_customer(empty_url: str) -> None:
    """Before 0006 two "Allow" clicks at once could store two consent rows for a person
    acting for no customer; the upgrade keeps the newest, then refuses a second one."""
    import datetime as dt

    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    config = alembic_config(empty_url)
    command.upgrade(config, "0005")
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    made = dt.datetime(2026, 1, 2, 3, 4, 5)
    grant = (
        "INSERT INTO consent_grants (id, user_id, client_id, customer_id, scopes, "
        "created_at, updated_at) VALUES (:id, 1, 1, NULL, :scopes, :t, :t)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, subject, email, email_display, email_verified, name, "
                    "status, created_at, legacy, contact_confirmed) VALUES (1, 's', 'a@x.lv', "
                    "'a@x.lv', true, 'A', 'active', :t, false, true)"
                ),
                {"t": made},
            )
            conn.execute(
                text(
                    "INSERT INTO clients (id, client_id, name, token_endpoint_auth_method, "
                    "redirect_uris, post_logout_redirect_uris, grant_types, allowed_scopes, "
                    "audience, first_party, id_token_signed_response_alg, created_at) VALUES "
                    "(1, 'c', 'C', 'none', '[]', '[]', '[]', '[]', 'a', false, 'RS256', :t)"
                ),
                {"t": made},
            )
            conn.execute(text(grant), {"id": 1, "scopes": '["openid"]', "t": made})
            conn.execute(text(grant), {"id": 2, "scopes": '["openid", "email"]', "t": made})
        command.upgrade(config, "head")
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT id FROM consent_grants")).scalars().all()
        assert kept == [2]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(grant), {"id": 3, "scopes": '["openid"]', "t": made})
    finally:
        engine.dispose()


def test_0007_keeps_requests_in_flight_unbound_and_steps_back(empty_url: str) -> None:
    """Paused requests and bank logins in flight at the upgrade get no browser binding
    (they match no browser: those people start again); the downgrade keeps them."""
    import datetime as dt

    from sqlalchemy import text

    config = alembic_config(empty_url)
    command.upgrade(config, "0006")
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    made = dt.datetime(2026, 1, 2, 3, 4, 5)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO interactions (id, client_id, params, created_at, expires_at, "
                    "consented) VALUES ('i1', 'c', '{}', :t, :t, false)"
                ),
                {"t": made},
            )
            conn.execute(
                text(
                    "INSERT INTO upstream_logins (id, state_hash, provider, pending_encrypted, "
                    "purpose, created_at, expires_at) VALUES (1, 'h', 'bank', :p, 'login', :t, "
                    ":t)"
                ),
                {"t": made, "p": b"x"},
            )
        command.upgrade(config, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT browser_hash FROM interactions")).all() == [(None,)]
            assert conn.execute(text("SELECT browser_hash FROM upstream_logins")).all() == [(None,)]
        command.downgrade(config, "0006")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM interactions")).scalars().all() == ["i1"]
            assert "browser_hash" not in {
                c["name"] for c in inspect(conn).get_columns("upstream_logins")
            }
    finally:
        engine.dispose()
