"""Mail that is never lost (issue 3, section 6): the outbox is written in the caller's
transaction, a real SMTP server (aiosmtpd) receives it, SMTP being down delays a mail but
never loses it or fails the request, two senders never send one mail twice, and the
`idp mail` commands show and push what waits."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import Result
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from idp import mail
from idp.cli import alembic_config
from idp.db import session_factory, utcnow
from idp.models import OutboxMail
from tests.conftest import (
    ISSUER,
    Mailbox,
    SmtpServer,
    first_link,
    html_body,
    running_smtp_server,
    text_body,
)

# Every letter the issue names, in both cases.
NAME = "Jānis Ločs-Šēnbergs Bēržs-Kušķe"
LINK = ISSUER + "/links/confirm/" + "s3cr3t-link-token-" + "x" * 20


def queue(app: Flask, to: str, **context: Any) -> int:
    """What a flow does: enqueue in its own session and commit (with the link)."""
    with app.app_context():
        session = session_factory(app)()
        try:
            row = mail.enqueue(session, to=to, template="smtp_test", **context)
            session.commit()
            return row.id
        finally:
            session.close()


def load(app: Flask, mail_id: int) -> OutboxMail:
    # A short session of its own: on SQLite a transaction left open holds the write lock
    # that the sender needs.
    with session_factory(app)() as session:
        row = session.get(OutboxMail, mail_id)
        assert row is not None
        return row


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def manual(app: Flask) -> Flask:
    """No background sender for this app: the test calls deliver_due itself."""
    mail.get_sender(app).autostart = False
    return app


def settings(app: Flask) -> Any:
    return app.config["IDP_SETTINGS"]


def one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- writing and delivering ------------------------------------------------------------------


def test_a_committed_mail_reaches_the_smtp_server_as_text_and_html(app, mailbox):
    mail_id = queue(app, "janis@example.lv", name=NAME, link=LINK)

    message = mailbox.wait_for("janis@example.lv")
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == f"Test mail for {NAME}"
    assert message["To"] == "janis@example.lv"
    assert message["From"].addresses[0].addr_spec == "no-reply@portal.example.lv"
    assert message["Date"] and message["Message-ID"].endswith("@portal.example.lv>")
    assert message["Content-Language"] == "en"
    text, html = text_body(message), html_body(message)
    for letter in "āčēšžŠ":
        assert letter in message["Subject"] and letter in text and letter in html
    assert text.startswith(f"Hello {NAME},\n")
    assert first_link(message) == LINK
    assert f'href="{LINK}"' in html and "<title>Test mail for" in html

    # The server has the mail a moment before the sender records it.
    wait_until(lambda: load(app, mail_id).sent_at is not None)
    row = load(app, mail_id)
    assert row.attempts == 0 and row.claimed_until is None
    assert row.body_encrypted == b"", "the body (and its link) is erased once delivered"


def test_an_address_with_latvian_letters_goes_out_as_smtputf8(app, mailbox, tmp_path, make_app):
    queue(app, "jānis@piemērs.lv", name=NAME)
    assert mailbox.wait_for("jānis@piemērs.lv")["To"] == "jānis@piemērs.lv"

    demo = manual(make_app(mode="demo", smtp_host="", instance_path=str(tmp_path)))
    mail_id = queue(demo, "žanis@piemērs.lv")
    path = mail.deliver_due(demo, settings(demo)).files[mail_id]
    assert BytesParser(policy=policy.default).parsebytes(path.read_bytes())["To"] == (
        "žanis@piemērs.lv"
    )


def test_html_bodies_escape_what_the_context_brings(app, mailbox):
    queue(app, "ann@example.lv", name="<b>Ann & Co</b>", link="https://rp.example.lv/a?b=1&c=2")

    message = mailbox.wait_for("ann@example.lv")
    html = html_body(message)
    assert "&lt;b&gt;Ann &amp; Co&lt;/b&gt;" in html and "<b>Ann" not in html
    assert 'href="https://rp.example.lv/a?b=1&amp;c=2"' in html
    # Text is text: nothing to escape there.
    assert "Hello <b>Ann & Co</b>," in text_body(message)
    assert first_link(message) == "https://rp.example.lv/a?b=1&c=2"


def test_a_rolled_back_mail_is_never_sent(app, db, mailbox):
    with app.app_context():
        mail.enqueue(db, to="rolled-back@example.lv", template="smtp_test", link=LINK)
        db.flush()
        db.rollback()
    queue(app, "after@example.lv")  # a later mail goes out: the sender did run

    mailbox.wait_for("after@example.lv")
    time.sleep(1.5)  # another poll
    assert mailbox.messages("rolled-back@example.lv") == []
    assert db.scalars(select(OutboxMail.to_address)).all() == ["after@example.lv"]
    db.commit()


def test_the_body_is_never_stored_in_clear(app, make_app, db):
    other = manual(make_app())
    mail_id = queue(other, "secret@example.lv", name=NAME, link=LINK)

    raw = db.execute(text("SELECT * FROM outbox_mails WHERE id = :id"), {"id": mail_id}).one()
    db.commit()
    dump = repr(tuple(raw)).encode() + b"".join(v for v in raw if isinstance(v, bytes))
    # (The subject and the address stay readable, for `idp mail pending`.)
    assert b"s3cr3t-link-token" not in dump
    # It is the encrypted body (with the key-encryption key), not something else.
    key = settings(other).effective_key_encryption_key
    assert LINK in json.loads(Fernet(key).decrypt(load(other, mail_id).body_encrypted))["text"]

    report = mail.deliver_due(other, settings(other))
    assert report.sent == [mail_id]
    assert load(other, mail_id).body_encrypted == b""


def test_the_persons_language_when_the_idp_speaks_it_else_the_default(app, db):
    with app.app_context():
        rows = [
            mail.enqueue(db, to="lang@example.lv", template="smtp_test", language=lang)
            for lang in ("EN-gb", "xx", None)
        ]
    assert [r.language for r in rows] == ["en", "en", "en"]
    db.rollback()


@pytest.mark.parametrize(
    "address",
    ["a@b.lv\r\nBcc: evil@example.com", "Ann <a@b.lv>", "a@b.lv, c@d.lv", "no-at-sign", ""],
)
def test_an_address_that_is_not_one_address_is_refused(app, db, address):
    with app.app_context(), pytest.raises(ValueError, match="not a usable e-mail address"):
        mail.enqueue(db, to=address, template="smtp_test")
    db.rollback()


# --- SMTP down, then up -----------------------------------------------------------------------


def test_smtp_down_delays_the_mail_and_retry_delivers_it_once(
    make_app, db, mailbox, smtp_server: SmtpServer
):
    # A long back-off, so that only `idp mail retry` sends it again during this test.
    idp = make_app(mail_retry_base=3600, mail_retry_max=7200)
    runner = idp.test_cli_runner()
    with smtp_server.down():
        started = time.monotonic()
        mail_id = queue(idp, "down@example.lv", link=LINK)
        assert time.monotonic() - started < 1, "the request waited for SMTP"

        # The background sender tried, failed, and left the mail queued with a back-off.
        wait_until(lambda: load(idp, mail_id).attempts == 1)
        row = load(idp, mail_id)
        assert row.sent_at is None and row.claimed_until is None and row.body_encrypted
        assert "ConnectionRefusedError" in row.last_error
        assert f"{smtp_server.host}:{smtp_server.port}" in row.last_error
        assert row.next_attempt_at - utcnow() > dt.timedelta(seconds=3500)

        listed = runner.invoke(args=["mail", "pending", "--json"])
        assert listed.exit_code == 0, listed.output
        [pending] = json.loads(listed.stdout)
        assert pending["id"] == mail_id and pending["to"] == "down@example.lv"
        assert pending["attempts"] == 1 and "ConnectionRefusedError" in pending["last_error"]
        assert pending["subject"] == "Test mail from the customer portal login"

        still_down = runner.invoke(args=["mail", "retry"])
        one_line_error(still_down, "1 mail(s) not delivered", "ConnectionRefusedError")
        assert load(idp, mail_id).attempts == 2

    retried = runner.invoke(args=["mail", "retry", "--json"])
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout) == {"sent": 1, "failed": 0, "busy": 0}
    message = mailbox.wait_for("down@example.lv", timeout=1)
    assert first_link(message) == LINK
    assert load(idp, mail_id).sent_at is not None
    assert runner.invoke(args=["mail", "pending"]).stdout.strip() == "(none)"
    time.sleep(1.5)  # a poll of the background sender later: still one mail
    assert len(mailbox.messages("down@example.lv")) == 1


def test_the_background_sender_delivers_once_smtp_is_back(app, mailbox, smtp_server):
    # The shared test app retries after 1 s, 2 s, then every 4 s (base_settings).
    with smtp_server.down():
        mail_id = queue(app, "later@example.lv", link=LINK)
        wait_until(lambda: load(app, mail_id).attempts >= 1)
        assert load(app, mail_id).sent_at is None

    message = mailbox.wait_for("later@example.lv", timeout=15)
    assert first_link(message) == LINK
    wait_until(lambda: load(app, mail_id).sent_at is not None)
    time.sleep(1.5)
    assert len(mailbox.messages("later@example.lv")) == 1


def test_a_silent_smtp_server_never_makes_the_request_wait(make_app, db, mailbox):
    # Accepts connections and never answers: the worst case for a request that would send.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        idp = make_app(smtp_port=silent.getsockname()[1], smtp_timeout=2)
        started = time.monotonic()
        mail_id = queue(idp, "silent@example.lv")
        assert time.monotonic() - started < 1

        wait_until(lambda: load(idp, mail_id).attempts == 1, timeout=15)
    row = load(idp, mail_id)
    assert row.sent_at is None and "timed out" in row.last_error.lower(), row.last_error


def test_failures_back_off_exponentially_up_to_the_maximum(make_app, db, smtp_server):
    idp = manual(make_app(mail_retry_base=30, mail_retry_max=100))
    mail_id = queue(idp, "backoff@example.lv")
    now = utcnow()
    waits = []
    with smtp_server.down():
        for _ in range(4):
            report = mail.deliver_due(idp, settings(idp), now=now)
            assert list(report.failed) == [mail_id]
            row = load(idp, mail_id)
            waits.append(round((row.next_attempt_at - now).total_seconds()))
            # Not due before its time...
            assert (
                mail.deliver_due(
                    idp, settings(idp), now=row.next_attempt_at - dt.timedelta(seconds=1)
                ).considered
                == 0
            )
            now = row.next_attempt_at
    assert waits == [30, 60, 100, 100]
    assert load(idp, mail_id).attempts == 4


# --- exactly once ----------------------------------------------------------------------------


def test_two_senders_at_once_send_each_mail_once(make_app, db, mailbox):
    first, second = manual(make_app()), manual(make_app())  # two app instances
    ids = [queue(first, f"race-{i}@example.lv") for i in range(20)]
    barrier = threading.Barrier(2)
    reports: list[mail.DeliveryReport] = []

    def sender(instance: Flask) -> None:
        barrier.wait(timeout=10)
        reports.append(mail.deliver_due(instance, settings(instance)))

    threads = [threading.Thread(target=sender, args=(a,)) for a in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(reports) == 2
    sent = reports[0].sent + reports[1].sent
    assert sorted(sent) == ids, "every mail sent, none twice"
    assert not reports[0].failed and not reports[1].failed
    received = mailbox.messages()
    assert len(received) == 20
    assert len({m["Message-ID"] for m in received}) == 20
    assert mail.deliver_due(first, settings(first)).considered == 0


def test_a_mail_claimed_by_another_sender_is_left_to_it(make_app, db, mailbox):
    idp = manual(make_app())
    mail_id = queue(idp, "claimed@example.lv")
    now = utcnow()
    db.execute(
        text("UPDATE outbox_mails SET claimed_until = :t WHERE id = :id"),
        {"t": (now + dt.timedelta(seconds=60)).replace(tzinfo=None), "id": mail_id},
    )
    db.commit()

    assert mail.deliver_due(idp, settings(idp), now=now).considered == 0
    assert mail.deliver_now(idp, settings(idp)).sent == []
    # The other sender died: its claim runs out and the mail goes out after all.
    later = mail.deliver_due(idp, settings(idp), now=now + dt.timedelta(seconds=61))
    assert later.sent == [mail_id]
    assert len(mailbox.messages("claimed@example.lv")) == 1


def test_the_poll_delivers_mail_written_by_another_instance(app, client, make_app, mailbox):
    writer = manual(make_app())  # wrote the mail, then died before sending it
    client.get("/login")  # the first request (through Flask) starts the sender
    assert mail.get_sender(app).running
    queue(writer, "polled@example.lv")
    mailbox.wait_for("polled@example.lv", timeout=5)


def test_the_sender_survives_a_failing_round(make_app, mailbox, tmp_path, caplog):
    # A database that is not migrated yet: every poll fails until it is.
    url = f"sqlite:///{tmp_path / 'late.sqlite3'}"
    idp = make_app(database_url=url)
    sender = mail.get_sender(idp)
    with caplog.at_level(logging.ERROR, logger="idp.mail"):
        sender.start()
        wait_until(lambda: "delivery round failed" in caplog.text, timeout=5)
    time.sleep(1.2)
    assert sender.running
    command.upgrade(alembic_config(url), "head")
    queue(idp, "survivor@example.lv")
    mailbox.wait_for("survivor@example.lv")


def test_a_cli_process_that_exits_right_after_its_commit_still_delivers(
    app, base_settings, mailbox
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update({f"IDP_{k.upper()}": str(v) for k, v in base_settings.items()})
    script = (
        "from idp import create_app, mail\n"
        "from idp.db import session_factory\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    s = session_factory(app)()\n"
        "    mail.enqueue(s, to='exiting@example.lv', template='smtp_test')\n"
        "    s.commit()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    mailbox.wait_for("exiting@example.lv", timeout=1)


# --- demo mode and no SMTP server ------------------------------------------------------------


def test_demo_mode_also_writes_an_eml_file_and_logs_its_path(
    make_app, db, mailbox, tmp_path, caplog
):
    idp = manual(make_app(mode="demo", instance_path=str(tmp_path)))
    mail_id = queue(idp, "demo@example.lv", name=NAME, link=LINK)

    with caplog.at_level(logging.INFO, logger="idp.mail"):
        report = mail.deliver_due(idp, settings(idp))
    assert report.sent == [mail_id]
    path = report.files[mail_id]
    assert path.parent == tmp_path / "mail" and path.suffix == ".eml"
    assert str(path) in caplog.text
    saved = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(saved, EmailMessage)
    assert saved["Subject"] == f"Test mail for {NAME}"
    assert first_link(saved) == LINK
    # ...and the SMTP server got it as well.
    assert first_link(mailbox.wait_for("demo@example.lv", timeout=1)) == LINK


def test_without_smtp_server_the_eml_file_is_the_delivery(make_app, db, mailbox, tmp_path):
    idp = manual(make_app(mode="development", smtp_host="", instance_path=str(tmp_path)))
    mail_id = queue(idp, "nosmtp@example.lv", link=LINK)

    report = mail.deliver_due(idp, settings(idp))
    assert report.sent == [mail_id] and report.files[mail_id].is_file()
    assert load(idp, mail_id).sent_at is not None
    assert LINK in report.files[mail_id].read_text()
    assert mailbox.messages() == []


# --- SMTP security and login -----------------------------------------------------------------


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"idp" and auth_data.password == b"right-password"
    # handled=False: aiosmtpd answers "535" itself.
    return AuthResult(success=ok, handled=False)


def test_login_with_the_configured_user_and_no_password_in_errors(make_app, db):
    with running_smtp_server(authenticator=_authenticator, auth_require_tls=False) as server:
        box = Mailbox(server)
        good = manual(
            make_app(smtp_port=server.port, smtp_user="idp", smtp_password="right-password")
        )
        assert mail.deliver_due(good, settings(good), ids=[queue(good, "auth@example.lv")]).sent
        box.wait_for("auth@example.lv", timeout=1)

        bad = manual(
            make_app(smtp_port=server.port, smtp_user="idp", smtp_password="wrong-password")
        )
        mail_id = queue(bad, "auth@example.lv")
        report = mail.deliver_due(bad, settings(bad), ids=[mail_id])
    error = report.failed[mail_id]
    assert "535" in error and "wrong-password" not in error
    assert load(bad, mail_id).last_error == error


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 that the IdP's default TLS context trusts
    (through SSL_CERT_FILE); returns the server's context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return server_context


def test_starttls(make_app, db, tls_files):
    with running_smtp_server(tls_context=tls_files, require_starttls=True) as server:
        box = Mailbox(server)
        idp = manual(make_app(smtp_port=server.port, smtp_security="starttls"))
        mail_id = queue(idp, "starttls@example.lv", link=LINK)
        assert mail.deliver_due(idp, settings(idp)).sent == [mail_id]
        assert first_link(box.wait_for("starttls@example.lv", timeout=1)) == LINK


def test_implicit_tls(make_app, db, tls_files):
    with running_smtp_server(ssl_context=tls_files) as server:
        box = Mailbox(server)
        idp = manual(make_app(smtp_port=server.port, smtp_security="tls"))
        mail_id = queue(idp, "tls@example.lv")
        assert mail.deliver_due(idp, settings(idp)).sent == [mail_id]
        box.wait_for("tls@example.lv", timeout=1)


def test_starttls_refused_by_the_server_keeps_the_mail(make_app, db, mailbox):
    idp = manual(make_app(smtp_security="starttls"))  # the shared server offers no STARTTLS
    mail_id = queue(idp, "plain@example.lv")
    report = mail.deliver_due(idp, settings(idp))
    assert "STARTTLS" in report.failed[mail_id]
    assert load(idp, mail_id).sent_at is None and mailbox.messages() == []


# --- the admin commands ----------------------------------------------------------------------


def test_mail_test_delivers_now_and_says_so(runner: FlaskCliRunner, mailbox):
    result = runner.invoke(args=["mail", "test", "--to", "admin@example.lv", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["delivered"] is True and out["to"] == "admin@example.lv"
    assert out["via"].startswith("127.0.0.1:")
    message = mailbox.wait_for("admin@example.lv", timeout=1)
    assert message["Subject"] == "Test mail from the customer portal login"
    assert first_link(message) == ISSUER + "/login"


def test_mail_test_with_smtp_down_fails_in_one_line_and_keeps_the_mail(
    runner, db: Session, smtp_server
):
    with smtp_server.down():
        result = runner.invoke(args=["mail", "test", "--to", "admin@example.lv"])
    one_line_error(result, "not delivered", "ConnectionRefusedError")
    assert db.scalars(select(OutboxMail.to_address).where(OutboxMail.sent_at.is_(None))).all() == [
        "admin@example.lv"
    ]
    db.commit()


def test_mail_test_refuses_a_bad_address(runner):
    one_line_error(
        runner.invoke(args=["mail", "test", "--to", "a@b.lv\nBcc: x@y.lv"]),
        "not a usable e-mail address",
    )


def test_mail_pending_table(runner, make_app, db, smtp_server):
    assert runner.invoke(args=["mail", "pending"]).stdout.strip() == "(none)"
    idp = manual(make_app())
    queue(idp, "table@example.lv")
    with smtp_server.down():
        mail.deliver_due(idp, settings(idp))
    lines = runner.invoke(args=["mail", "pending"]).stdout.splitlines()
    assert lines[0].split() == ["ID", "TO", "SUBJECT", "ATTEMPTS", "NEXT_ATTEMPT", "LAST_ERROR"]
    assert "table@example.lv" in lines[1] and "ConnectionRefusedError" in lines[1]


def test_db_purge_deletes_old_delivered_mail_only(runner, make_app, db):
    idp = manual(make_app())
    old, recent, unsent = (queue(idp, f"{n}@example.lv") for n in ("old", "recent", "unsent"))
    mail.deliver_due(idp, settings(idp), ids=[old, recent])
    db.execute(
        text("UPDATE outbox_mails SET sent_at = :t WHERE id = :id"),
        {"t": (utcnow() - dt.timedelta(days=31)).replace(tzinfo=None), "id": old},
    )
    db.execute(
        text("UPDATE outbox_mails SET created_at = :t WHERE id = :id"),
        {"t": (utcnow() - dt.timedelta(days=90)).replace(tzinfo=None), "id": unsent},
    )
    db.commit()

    result = runner.invoke(args=["db", "purge", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outbox_mails"] == 1
    assert sorted(db.scalars(select(OutboxMail.id)).all()) == [recent, unsent]
    db.commit()


@pytest.fixture(autouse=True)
def _smtp_server_is_up_again(smtp_server: SmtpServer) -> Iterator[None]:
    yield
    assert smtp_server.running, "a test left the shared SMTP server down"
