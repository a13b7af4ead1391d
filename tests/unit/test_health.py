"""What /readyz says about the database's migrations (idp/health.py: migration_state)."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from idp.cli import alembic_config
from idp.health import migration_state

SCRIPT = ScriptDirectory.from_config(alembic_config("sqlite://"))
HEAD, PREVIOUS = [r.revision for r in SCRIPT.walk_revisions("base", "heads")][:2]


def test_at_head_is_ready() -> None:
    assert migration_state([HEAD]) == (True, "ok")


def test_behind_is_not_ready_and_says_where_it_is() -> None:
    assert migration_state([PREVIOUS]) == (False, f"at {PREVIOUS}, head is {HEAD}")


def test_never_migrated_is_not_ready() -> None:
    assert migration_state([]) == (False, f"not migrated, head is {HEAD}")


def test_ahead_of_this_release_is_ready_during_a_rolling_upgrade() -> None:
    # A revision this release does not know: a newer release has migrated the database.
    ready, said = migration_state(["0042_from_a_newer_release"])
    assert ready
    assert said == f"ahead: at 0042_from_a_newer_release, this release's head is {HEAD}"
