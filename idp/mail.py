"""The mail outbox: written in the caller's transaction, delivered by SMTP with retries.

Writing (`enqueue`). A flow renders `templates/mail/<name>.txt` and `.html` in the person's
language and adds the mail to *its own* session as an `OutboxMail` row: the mail commits,
or rolls back, together with the link it carries. The bodies hold live links, so they are
stored encrypted with the key-encryption key and erased once delivered. No request ever
talks to SMTP: after the commit, the session wakes this process's sender and returns.

Templates. A mail template extends `mail/_layout.txt` / `mail/_layout.html` and fills the
block `body` (greeting included); the `.txt` one also defines `{% block subject %}`. The subject
block lies outside the layout's blocks, so it is not part of the body; it is rendered on
its own and given to both bodies as `subject` (with `language`). HTML is autoescaped;
links come in the context as absolute URLs.

Delivering (`deliver_due`). Any process may deliver, and several app instances do at once:
each mail is claimed with one atomic `UPDATE ... SET claimed_until WHERE id = ? AND sent_at
IS NULL AND (claimed_until IS NULL OR claimed_until < now)` right before it is sent, so no
two senders send the same mail (docs/architecture.md, "Data that must never be lost or
doubled"). Sent: `sent_at` is set and the body erased. Failed: `attempts` + 1, a short
`last_error` (never a secret), `next_attempt_at = now + min(mail_retry_max, mail_retry_base
* 2^(attempts-1))`, and the claim released - a mail is never dropped. No DB transaction is
open while SMTP is talked to. A round uses one SMTP connection; when the connection itself
fails, the rest of the round fails with that error at once (no smtp_timeout per mail). The
one way to send a mail twice is a process dying between the SMTP server's "250" and the
UPDATE that records it: delivery is at least once.

The background sender (`MailSender`, one per app in each process) is a daemon thread that
waits on an Event: woken after a commit that wrote mail, otherwise every
`mail_poll_interval` seconds - the poll picks up retries, and mail that another instance
wrote or a dead process left claimed. It starts at the first request through Flask (the
fast paths of idp/fastpath.py skip it) or the first wake, never at import or in create_app
(web workers fork after create_app; tests build many apps). A round that fails unexpectedly
is logged with its traceback and the loop goes on. `stop()` ends it (test fixtures).

At process exit (`_stop_at_exit`) a sender finishes the mail it is delivering, each SMTP
step bounded by smtp_timeout, and then, by default, also the mail it was woken for, so the
mail of a CLI command goes out before the command returns to the shell. A server worker
(wsgi.py sets `drain_at_exit = False`) starts no new delivery once it is told to stop: on
SIGTERM granian lets the requests in flight finish and ends the worker, which must not be
held up (nor killed mid-delivery, the one way to send a mail twice) by a round of mail;
what it leaves unsent stays in the outbox for the next poll of any instance. Granian's
workers are processes of `multiprocessing`, which end with os._exit: `atexit` hooks never
run there. threading's exit hooks do, in a worker and at a normal interpreter exit alike
(as concurrent.futures uses them), before the interpreter drops its daemon threads.

Demo mode writes every mail also as `<instance_dir>/mail/<created>-<id>.eml` and logs the
path at INFO, so a newcomer can open the link. With `smtp_host = ""` (allowed only in
demo/development) writing that file *is* the delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import ssl
import threading
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, current_app, render_template
from flask_babel import force_locale
from sqlalchemy import Engine, event, func, or_, select, update
from sqlalchemy.orm import Session, SessionTransaction

from idp import observability
from idp.db import READ_ONLY, is_outage, utcnow
from idp.email_address import InvalidEmail, parse_email
from idp.models import OutboxMail
from idp.settings import Settings

log = logging.getLogger(__name__)

# Mails handled per round; a full round is followed at once by the next one.
ROUND_LIMIT = 50
# session.info key: the sender to wake after this session's commit.
_WAKE = "idp.mail.wake"
# Stored errors are cut to this length (the column holds 500).
_ERROR_LENGTH = 300


# --- writing -------------------------------------------------------------------------------


def enqueue(
    session: Session, *, to: str, template: str, language: str | None = None, **context: Any
) -> OutboxMail:
    """Render `templates/mail/<template>.txt|.html` in `language` (when it is one of the
    configured locales, else the default) and add the encrypted mail to `session`.

    The caller commits it with the link it carries; after that commit this process's
    sender is woken. Needs an app context (request or CLI). Raises ValueError for an
    address that cannot be a mail header, jinja2 errors for a broken template.
    """
    row = _build_row(to, template, language, context)
    session.add(row)
    session.info[_WAKE] = get_sender(current_app)
    return row


def queue_test_mail(session: Session, to: str, **context: Any) -> OutboxMail:
    """The `smtp_test` mail, added to `session` *without* waking the background sender:
    the caller (`idp mail test`) commits and delivers it itself, to report the outcome."""
    row = _build_row(to, "smtp_test", None, context)
    session.add(row)
    return row


def _build_row(to: str, template: str, language: str | None, context: dict[str, Any]) -> OutboxMail:
    settings: Settings = current_app.config["IDP_SETTINGS"]
    check_address(to)
    lang = mail_language(settings, language)
    subject, text, html = render(template, lang, context)
    body = json.dumps({"text": text, "html": html}).encode()
    return OutboxMail(
        to_address=to,
        subject=subject,
        language=lang,
        body_encrypted=_fernet(settings).encrypt(body),
    )


def check_address(address: str) -> None:
    """The last guard before an address goes into a To header as it is: it must pass the
    one address rule of the forms (idp.email_address: no line breaks, no list, no display
    name, no quotes) and already be in the form the forms store, so nothing is changed on
    the way. Deliverability is the SMTP server's business."""
    try:
        usable = parse_email(address).display == address
    except InvalidEmail:
        usable = False
    if not usable:
        raise ValueError(f"not a usable e-mail address: {address!r}")


def mail_language(settings: Settings, language: str | None) -> str:
    """The person's language when the IdP speaks it ("lv-LV" counts as "lv"), else the
    default locale."""
    if language:
        base = language.replace("_", "-").split("-")[0].lower()
        if base in settings.locales:
            return base
    return settings.default_locale


def render(template: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of `templates/mail/<template>.*` in `language`."""
    app = current_app
    with force_locale(language):
        txt = app.jinja_env.get_template(f"mail/{template}.txt")
        subject_block = txt.blocks.get("subject")
        if subject_block is None:
            raise LookupError(f"templates/mail/{template}.txt has no {{% block subject %}}")
        values = dict(context)
        app.update_template_context(values)
        subject = " ".join("".join(subject_block(txt.new_context(values))).split())
        if len(subject) > 255:  # the column's size; a subject that long is a template bug
            subject = subject[:254] + "…"
        values = {**context, "subject": subject, "language": language}
        text = _tidy(render_template(f"mail/{template}.txt", **values))
        html = render_template(f"mail/{template}.html", **values)
    return subject, text, html


def _tidy(text: str) -> str:
    """Template tags leave blank lines behind; a mail shows at most one in a row."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _fernet(settings: Settings) -> Fernet:
    return Fernet(settings.effective_key_encryption_key)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    sender: MailSender | None = session.info.pop(_WAKE, None)
    if sender is not None:
        sender.wake()


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous: SessionTransaction) -> None:
    # The outermost transaction rolled back: the mail rows are gone, nothing to wake for.
    # (A stale flag would only cause one needless round.)
    if previous.parent is None:
        session.info.pop(_WAKE, None)


# --- delivering ----------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one `deliver_due` call did, by outbox id."""

    sent: list[int] = field(default_factory=list)
    # id -> the error stored in last_error
    failed: dict[int, str] = field(default_factory=dict)
    # Claimed (or sent) by another sender between our look-up and our claim.
    skipped: list[int] = field(default_factory=list)
    # id -> the .eml copy written (demo mode, or smtp_host "").
    files: dict[int, Path] = field(default_factory=dict)

    @property
    def considered(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.skipped)


@dataclass(frozen=True)
class _Claimed:
    id: int
    to_address: str
    subject: str
    body_encrypted: bytes
    language: str
    created_at: dt.datetime
    attempts: int


def deliver_due(
    app_or_engine: Flask | Engine,
    settings: Settings,
    now: dt.datetime | None = None,
    limit: int = ROUND_LIMIT,
    *,
    ignore_backoff: bool = False,
    ids: Collection[int] | None = None,
    interrupt: threading.Event | None = None,
) -> DeliveryReport:
    """Deliver up to `limit` unsent mails whose next attempt is due (any unsent one with
    `ignore_backoff`), optionally only those in `ids`. Each is claimed atomically first.
    Once `interrupt` is set no further mail is claimed (the one being sent is finished).

    `now` fixes the clock (tests); by default the real clock is read at each step. SMTP
    errors are recorded on the mail, never raised; database errors are raised.
    """
    engine = (
        app_or_engine
        if isinstance(app_or_engine, Engine)
        else (app_or_engine.extensions["idp.engine"])
    )

    def clock() -> dt.datetime:
        return now or utcnow()

    report = DeliveryReport()
    candidates = _due_ids(engine, clock(), limit, ignore_backoff, ids)
    if not candidates:
        return report
    with _SmtpConnection(settings) as smtp:
        for mail_id in candidates:
            if interrupt is not None and interrupt.is_set():
                break
            mail = _claim(engine, settings, mail_id, clock())
            if mail is None:
                report.skipped.append(mail_id)
                continue
            error = _deliver_one(mail, settings, smtp, report)
            if error is None:
                _mark_sent(engine, mail_id, clock())
                report.sent.append(mail_id)
            else:
                _mark_failed(engine, settings, mail, clock(), error)
                report.failed[mail_id] = error
    return report


def deliver_now(
    app_or_engine: Flask | Engine, settings: Settings, ids: Collection[int] | None = None
) -> DeliveryReport:
    """Every mail unsent at this moment (or those of `ids`), ignoring the back-off: each
    is attempted once (`idp mail retry`, `idp mail test`)."""
    engine = (
        app_or_engine
        if isinstance(app_or_engine, Engine)
        else (app_or_engine.extensions["idp.engine"])
    )
    stmt = select(OutboxMail.id).where(OutboxMail.sent_at.is_(None)).order_by(OutboxMail.id)
    if ids is not None:
        stmt = stmt.where(OutboxMail.id.in_(list(ids)))
    with engine.connect() as conn:
        conn.execution_options(**READ_ONLY)
        waiting = list(conn.scalars(stmt))
    total = DeliveryReport()
    for start in range(0, len(waiting), ROUND_LIMIT):
        chunk = waiting[start : start + ROUND_LIMIT]
        report = deliver_due(engine, settings, ignore_backoff=True, ids=chunk, limit=ROUND_LIMIT)
        total.sent += report.sent
        total.failed.update(report.failed)
        total.files.update(report.files)
        # Claimed by another sender right now (including the mails it holds at this
        # moment, which the look-up above does not return).
        total.skipped += [i for i in chunk if i not in report.sent and i not in report.failed]
    return total


def pending(session: Session) -> list[OutboxMail]:
    """Mails not delivered yet, the next due first."""
    return list(
        session.scalars(
            select(OutboxMail)
            .where(OutboxMail.sent_at.is_(None))
            .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
        )
    )


def outbox_backlog(engine: Engine) -> tuple[int, dt.datetime | None]:
    """How many mails are not delivered yet, and when the oldest was written (the
    metrics' gauges): one read on the sent_at index."""
    with engine.connect() as conn:
        conn.execution_options(**READ_ONLY)
        depth, oldest = conn.execute(
            select(func.count(), func.min(OutboxMail.created_at)).where(
                OutboxMail.sent_at.is_(None)
            )
        ).one()
    return int(depth), oldest


def _due_ids(
    engine: Engine, now: dt.datetime, limit: int, ignore_backoff: bool, ids: Collection[int] | None
) -> list[int]:
    stmt = select(OutboxMail.id).where(
        OutboxMail.sent_at.is_(None),
        or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
    )
    if not ignore_backoff:
        stmt = stmt.where(OutboxMail.next_attempt_at <= now)
    if ids is not None:
        stmt = stmt.where(OutboxMail.id.in_(list(ids)))
    stmt = stmt.order_by(OutboxMail.next_attempt_at, OutboxMail.id).limit(limit)
    # The idle poll only reads: on SQLite it must not take the write lock every few seconds.
    with engine.connect() as conn:
        conn.execution_options(**READ_ONLY)
        return list(conn.scalars(stmt))


def _claim_seconds(settings: Settings) -> int:
    # Long enough for one mail (connect, STARTTLS, login, send: each bounded by
    # smtp_timeout); a sender that died holding a claim delays its mail this long.
    return 60 + 6 * settings.smtp_timeout


def _claim(engine: Engine, settings: Settings, mail_id: int, now: dt.datetime) -> _Claimed | None:
    stmt = (
        update(OutboxMail)
        .where(
            OutboxMail.id == mail_id,
            OutboxMail.sent_at.is_(None),
            or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
        )
        .values(claimed_until=now + dt.timedelta(seconds=_claim_seconds(settings)))
        .returning(
            OutboxMail.id,
            OutboxMail.to_address,
            OutboxMail.subject,
            OutboxMail.body_encrypted,
            OutboxMail.language,
            OutboxMail.created_at,
            OutboxMail.attempts,
        )
    )
    with engine.begin() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else _Claimed(*row)


def _mark_sent(engine: Engine, mail_id: int, now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id, OutboxMail.sent_at.is_(None))
            .values(sent_at=now, body_encrypted=b"", claimed_until=None)
        )
    observability.count_mail_delivery("sent")


def retry_delay(settings: Settings, attempts: int) -> int:
    """Seconds until the next attempt after `attempts` failed ones (1, 2, ...)."""
    return min(settings.mail_retry_max, settings.mail_retry_base * (1 << max(attempts - 1, 0)))


def _mark_failed(
    engine: Engine, settings: Settings, mail: _Claimed, now: dt.datetime, error: str
) -> None:
    attempts = mail.attempts + 1
    delay = retry_delay(settings, attempts)
    with engine.begin() as conn:
        conn.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail.id, OutboxMail.sent_at.is_(None))
            .values(
                attempts=OutboxMail.attempts + 1,
                last_error=error,
                next_attempt_at=now + dt.timedelta(seconds=delay),
                claimed_until=None,
            )
        )
    observability.count_mail_delivery("failed")
    log.warning(
        "mail %d not delivered (attempt %d, next in %d s): %s", mail.id, attempts, delay, error
    )


def _deliver_one(
    mail: _Claimed, settings: Settings, smtp: _SmtpConnection, report: DeliveryReport
) -> str | None:
    """None when delivered, else the error to record."""
    try:
        body = json.loads(_fernet(settings).decrypt(mail.body_encrypted))
    except (InvalidToken, ValueError):
        return "the body cannot be decrypted (was key_encryption_key changed?)"
    try:
        message = build_message(
            settings,
            mail.id,
            mail.to_address,
            mail.subject,
            mail.language,
            mail.created_at,
            body["text"],
            body["html"],
        )
    except (ValueError, MessageError) as exc:
        return _short(f"the message cannot be built: {exc}", settings)
    if settings.is_demo or not settings.smtp_host:
        try:
            path = write_eml(settings, mail.id, mail.created_at, message)
        except OSError as exc:
            return _short(f"cannot write the .eml copy: {exc}", settings)
        report.files[mail.id] = path
        log.info("mail %d to %s (%s) written to %s", mail.id, mail.to_address, mail.subject, path)
    if not settings.smtp_host:
        return None
    return smtp.send(message)


def build_message(
    settings: Settings,
    mail_id: int,
    to: str,
    subject: str,
    language: str,
    created_at: dt.datetime,
    text: str,
    html: str,
) -> EmailMessage:
    """multipart/alternative, text then HTML, UTF-8. The Message-ID is the same at every
    attempt, so a mail client can fold a rare double delivery into one."""
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(created_at)
    message["Message-ID"] = f"<{created_at:%Y%m%d%H%M%S%f}.{mail_id}@{domain}>"
    # RFC 3834: no auto-replies (vacation notices) to a no-reply sender.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # After the parts exist: making a multipart moves every Content-* header into its first
    # part, and the language is that of both.
    message["Content-Language"] = language
    return message


def eml_path(settings: Settings, mail_id: int, created_at: dt.datetime) -> Path:
    # A fixed name per mail: a retry overwrites its own copy instead of adding one.
    return settings.instance_dir / "mail" / f"{created_at:%Y%m%d-%H%M%S}-{mail_id}.eml"


def write_eml(
    settings: Settings, mail_id: int, created_at: dt.datetime, message: EmailMessage
) -> Path:
    path = eml_path(settings, mail_id, created_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    # An address with non-ASCII letters cannot be written as an RFC 2047 encoded word:
    # such a mail is stored as SMTPUTF8 sends it (RFC 6532, UTF-8 headers).
    international = not str(message["To"]).isascii()
    policy = message.policy
    assert isinstance(policy, EmailPolicy)  # EmailMessage() has email.policy.default
    path.write_bytes(message.as_bytes(policy=policy.clone(utf8=international)))
    return path


def _short(text: str, settings: Settings) -> str:
    text = " ".join(text.split())
    if settings.smtp_password:  # servers may echo what they were sent
        text = text.replace(settings.smtp_password, "***")
    return text[:_ERROR_LENGTH]


def _describe(exc: smtplib.SMTPException | OSError, settings: Settings) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        detail = f"SMTP {exc.smtp_code} {text}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "recipient refused: " + "; ".join(
            f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for code, msg in exc.recipients.values()
        )
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return _short(f"{detail} [{settings.smtp_host}:{settings.smtp_port}]", settings)


class _SmtpConnection:
    """One SMTP connection per round, opened at the first mail. After a failure of the
    connection itself (refused, timed out, TLS, login, dropped) the rest of the round fails
    with the same error at once, rather than waiting smtp_timeout for every mail."""

    # Refusals about one message; the connection stays usable (smtplib sends RSET).
    MESSAGE_ERRORS = (
        smtplib.SMTPRecipientsRefused,
        smtplib.SMTPSenderRefused,
        smtplib.SMTPDataError,
        smtplib.SMTPNotSupportedError,
    )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._broken: str | None = None

    def __enter__(self) -> _SmtpConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, message: EmailMessage) -> str | None:
        if self._broken is not None:
            return self._broken
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except (smtplib.SMTPException, OSError) as exc:
                self._broken = _describe(exc, self.settings)
                return self._broken
        try:
            self._smtp.send_message(message)
        except self.MESSAGE_ERRORS as exc:
            return _describe(exc, self.settings)
        except (smtplib.SMTPException, OSError) as exc:
            self._broken = _describe(exc, self.settings)
            self.close()
            return self._broken
        return None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        # EHLO with the issuer's host name: smtplib's default (socket.getfqdn) does a
        # reverse DNS look-up that can stall on badly configured hosts.
        helo = urlsplit(s.issuer).hostname or "localhost"
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                local_hostname=helo,
                timeout=s.smtp_timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                s.smtp_host, s.smtp_port, local_hostname=helo, timeout=s.smtp_timeout
            )
        try:
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
        except (smtplib.SMTPException, OSError):
            smtp.close()
            raise
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


# --- the background sender -----------------------------------------------------------------


class MailSender:
    """This process's sender for one app: a daemon thread, started lazily, woken after a
    commit that wrote mail and otherwise polling every mail_poll_interval seconds."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings: Settings = app.config["IDP_SETTINGS"]
        # False: neither a wake nor a request starts the thread (tests that drive
        # deliver_due by hand); the poll of other instances still delivers.
        self.autostart = True
        # At process exit: also deliver the mail this sender was woken for (a CLI command),
        # or only finish the delivery in progress (a server worker: wsgi.py).
        self.drain_at_exit = True
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._mail_waiting = False
        self._drain = False
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        # Set with _stop unless draining: no new mail is claimed, even within a round.
        self._interrupt: threading.Event | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread if it is not running (called before every request: cheap)."""
        if self.autostart and not self.running:
            self.start()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            stop, interrupt = threading.Event(), threading.Event()
            thread = threading.Thread(
                target=self._run, args=(stop, interrupt), daemon=True, name="idp-mail-sender"
            )
            thread.start()
            self._thread, self._stop, self._interrupt = thread, stop, interrupt
            self._drain = False
        _running.add(self)

    def wake(self) -> None:
        """Mail was committed: deliver it now (never blocks, never raises)."""
        self._mail_waiting = True
        if self.autostart:
            try:
                self.start()
            except RuntimeError as exc:  # "can't start new thread": the poll delivers later
                log.warning("mail sender could not start: %s", exc)
        self._wakeup.set()

    def stop(self, *, drain: bool = False, timeout: float | None = None) -> None:
        """End the thread. Without `drain` the mail being sent is finished and no other is
        started; with `drain` the round in progress is finished, and then the mail it was
        woken for is delivered. Waits at most `timeout` (by default a few smtp_timeouts)."""
        with self._lock:
            thread, stop, interrupt = self._thread, self._stop, self._interrupt
            self._thread = self._stop = self._interrupt = None
        _running.discard(self)
        if thread is None or stop is None or interrupt is None:
            return
        self._drain = drain
        if not drain:
            interrupt.set()
        stop.set()
        self._wakeup.set()
        thread.join(timeout if timeout is not None else 3 * self.settings.smtp_timeout + 5)

    def _run(self, stop: threading.Event, interrupt: threading.Event) -> None:
        while True:
            self._wakeup.wait(self.settings.mail_poll_interval)
            self._wakeup.clear()
            if stop.is_set():
                if self._drain and self._mail_waiting:
                    self._round(stop, interrupt)
                return
            self._round(stop, interrupt)

    def _round(self, stop: threading.Event, interrupt: threading.Event) -> None:
        self._mail_waiting = False
        try:
            while True:
                report = deliver_due(self.app, self.settings, interrupt=interrupt)
                if report.considered < ROUND_LIMIT or stop.is_set():
                    return
        except Exception as exc:  # noqa: BLE001 - the sender outlives any one bad round (DB down, a bug); logged with its traceback
            if is_outage(exc):  # not a bug: one line, not a traceback every few seconds
                log.warning(
                    "mail sender: the database is unavailable; next try in %d s",
                    self.settings.mail_poll_interval,
                )
                return
            log.exception(
                "mail sender: the delivery round failed; next try in %d s",
                self.settings.mail_poll_interval,
            )


_running: weakref.WeakSet[MailSender] = weakref.WeakSet()


def _stop_at_exit() -> None:
    # Daemon threads die with the interpreter: let them finish what they are sending first
    # (and, drain_at_exit, the mail they were woken for: a CLI command that sent an
    # activation link exits right after its commit).
    for sender in list(_running):
        sender.stop(drain=sender.drain_at_exit)


# Not atexit: a granian worker ends with os._exit after multiprocessing's clean-up, which
# runs threading's exit hooks but no atexit hook (see the module docstring).
threading._register_atexit(_stop_at_exit)  # type: ignore[attr-defined]  # private, stable since 3.9


def get_sender(app: Flask) -> MailSender:
    sender: MailSender = app.extensions["idp.mail"]
    return sender


def _show_mail_log(settings: Settings) -> None:
    # Nothing configures logging under `make run` or the `idp` command, and without a
    # handler Python shows warnings only: the newcomer would never see where the demo
    # mail went. Configured logging (a root handler, pytest) is left alone.
    if settings.is_production or log.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    log.addHandler(handler)


def init_app(app: Flask) -> None:
    sender = MailSender(app)
    app.extensions["idp.mail"] = sender
    app.before_request(sender.ensure_running)
    _show_mail_log(app.config["IDP_SETTINGS"])
