"""The admin CLI mails links with the issuer of the server `make run` started, not with the
default its own shell would give it: `make run PORT=5103` records its settings
(`python -m idp.effective`), and `idp users invite` / `idp delegation add-user` typed in
another shell (no IDP_ISSUER, no IDP_DATABASE_URL) read them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from idp.models import Customer
from tests.conftest import Mailbox

SERVER_ISSUER = "http://127.0.0.1:5103"
IDP = Path(sys.executable).parent / "idp"


def _shell(**extra: str) -> dict[str, str]:
    """An admin's shell: nothing IDP_* of the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    return env | extra


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def admin_shell(tmp_path: Path, base_settings: dict[str, Any]) -> dict[str, str]:
    """`make run PORT=5103` has started (its recording step, as the Makefile runs it); the
    environment of another shell, which knows only what is not recorded: secrets, SMTP."""
    effective = tmp_path / "effective.toml"
    _run(
        [sys.executable, "-m", "idp.effective"],
        _shell(
            IDP_EFFECTIVE_CONFIG=str(effective),
            IDP_ISSUER=SERVER_ISSUER,
            IDP_MODE="development",
            IDP_DATABASE_URL=base_settings["database_url"],
            IDP_INSTANCE_PATH=str(tmp_path / "instance"),
        ),
    )
    assert f'issuer = "{SERVER_ISSUER}"' in effective.read_text()
    not_recorded = ("secret_key", "key_encryption_key", "smtp_host", "smtp_port", "smtp_security")
    return _shell(
        IDP_EFFECTIVE_CONFIG=str(effective),
        **{f"IDP_{k.upper()}": str(base_settings[k]) for k in not_recorded},
    )


def test_users_invite_mails_the_running_servers_issuer(
    admin_shell: dict[str, str], customer: Customer, mailbox: Mailbox
) -> None:
    _run(
        [
            str(IDP),
            "users",
            "invite",
            "--customer",
            customer.number,
            "--email",
            "anna@example.lv",
            "--name",
            "Anna Liepa",
        ],
        admin_shell,
    )
    assert mailbox.link_for("anna@example.lv").startswith(SERVER_ISSUER + "/")


def test_delegation_add_user_mails_the_running_servers_issuer(
    admin_shell: dict[str, str], customer: Customer, mailbox: Mailbox
) -> None:
    _run(
        [
            str(IDP),
            "delegation",
            "add-user",
            "--customer",
            customer.number,
            "--email",
            "peteris@example.lv",
            "--name",
            "Pēteris Ozols",
            "--rights",
            "invoices.read",
            "--evidence",
            "signed application 17",
        ],
        admin_shell,
    )
    assert mailbox.link_for("peteris@example.lv").startswith(SERVER_ISSUER + "/")


def test_an_explicit_issuer_in_the_shell_still_wins(
    admin_shell: dict[str, str], customer: Customer, mailbox: Mailbox
) -> None:
    _run(
        [
            str(IDP),
            "users",
            "invite",
            "--customer",
            customer.number,
            "--email",
            "anna@example.lv",
            "--name",
            "Anna Liepa",
        ],
        admin_shell | {"IDP_ISSUER": "http://127.0.0.1:6001"},
    )
    assert mailbox.link_for("anna@example.lv").startswith("http://127.0.0.1:6001/")
