"""SIGTERM, as an orchestrator or systemd sends it when an instance is replaced: granian lets
the requests in flight finish and the worker's mail sender finish the delivery it is in the
middle of, then the process exits 0. Real granian processes, real HTTP, a real SMTP server
(which holds DATA for a while, so that a delivery is in progress when the signal comes).

What makes the request slow is real work: the person's password was hashed with argon2
parameters raised for this deployment, so verifying it at login takes a couple of seconds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, pool, text

from tests.conftest import PASSWORD, SmtpServer, _MailCollector, csrf_token, free_loopback_port
from tests.e2e.conftest import (
    HTTP_TIMEOUT,
    ServerProcess,
    _base_env,
    fresh_database,
    run_idp,
    start_server,
)

# Verifying a password hashed with these takes about 2 s on the test machine (the shipped
# default takes about 20 ms).
SLOW_ARGON2 = {"IDP_ARGON2_TIME_COST": "40", "IDP_ARGON2_MEMORY_COST": "65536"}
# How long the SMTP server waits before it answers the message's DATA.
DATA_HOLD = 2.0
# SIGTERM to exit: the login or the delivery in flight, plus the worker's shutdown.
EXIT_BOUND = 20.0


class HoldingCollector(_MailCollector):
    """Accepts a message only after DATA_HOLD seconds, and only if the client is still
    connected then: a sender killed meanwhile has not delivered it (it never saw the 250)."""

    def __init__(self) -> None:
        super().__init__()
        self.data_started = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        # Cancelled by aiosmtpd when the connection is lost while we wait.
        await asyncio.sleep(DATA_HOLD)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Deployment:
    env: dict[str, str]
    database_url: str
    workdir: Path
    smtp: SmtpServer
    email: str

    def start(self, name: str) -> ServerProcess:
        return start_server(self.env, self.workdir / f"{name}.log")

    def create_person(self) -> str:
        email = f"shutdown-{secrets.token_hex(4)}@example.lv"
        run_idp(self.env, "users", "create", "--email", email, "--name", "Ilze Kalniņa",
                "--password", PASSWORD, "--json")  # fmt: skip
        return email

    def outbox(self, to: str) -> list[tuple[Any, int, Any]]:
        """(sent_at, attempts, claimed_until) of the mails to `to`."""
        engine = create_engine(self.database_url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT sent_at, attempts, claimed_until FROM outbox_mails"
                        " WHERE to_address = :to"
                    ),
                    {"to": to},
                )
                return [(row[0], row[1], row[2]) for row in rows]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("shutdown")
    smtp = SmtpServer(free_loopback_port())
    smtp.handler = HoldingCollector()
    smtp.start()
    try:
        with fresh_database(workdir) as database_url:
            env = _base_env(database_url, workdir)
            env.update(
                {
                    "IDP_SMTP_HOST": smtp.host,
                    "IDP_SMTP_PORT": str(smtp.port),
                    "IDP_SMTP_SECURITY": "none",
                    "IDP_SMTP_TIMEOUT": "10",
                    "IDP_MAIL_POLL_INTERVAL": "1",
                    **SLOW_ARGON2,
                }
            )
            run_idp(env, "db", "upgrade")
            deployment = Deployment(env, database_url, workdir, smtp, "")
            deployment.email = deployment.create_person()
            yield deployment
    finally:
        smtp.stop()


def worker_cpu_seconds(server: ServerProcess) -> float:
    """CPU time used so far by the granian worker (the main process's one child)."""
    main = server.process.pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    assert len(children) == 1, children
    fields = Path(f"/proc/{children[0]}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, fields 14 and 15 of proc(5), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def exit_code_within(server: ServerProcess, bound: float) -> tuple[int, float]:
    started = time.monotonic()
    code = server.process.wait(timeout=bound)
    return code, time.monotonic() - started


def test_a_login_in_flight_at_sigterm_gets_its_answer_and_the_server_exits_0(
    deployment: Deployment,
) -> None:
    server = deployment.start("granian-login")
    try:
        http = requests.Session()
        page = http.get(server.base_url + "/login", timeout=HTTP_TIMEOUT)
        assert page.status_code == 200
        answer: list[requests.Response | BaseException] = []
        answered_at: list[float] = []

        def log_in() -> None:
            try:
                answer.append(
                    http.post(
                        server.base_url + "/login",
                        data={
                            "csrf_token": csrf_token(page.text),
                            "email": deployment.email,
                            "password": PASSWORD,
                        },
                        allow_redirects=False,
                        timeout=HTTP_TIMEOUT * 3,
                    )
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test below
                answer.append(exc)
            answered_at.append(time.monotonic())

        cpu_before = worker_cpu_seconds(server)
        login = threading.Thread(target=log_in)
        login.start()
        # The worker is verifying the password (it has burned CPU on it): the login is in
        # flight, and will be for a second or more.
        deadline = time.monotonic() + HTTP_TIMEOUT
        while worker_cpu_seconds(server) - cpu_before < 0.3:
            assert time.monotonic() < deadline and login.is_alive(), "the login did not start"
            time.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        signalled_at = time.monotonic()

        code, took = exit_code_within(server, EXIT_BOUND)
        login.join(HTTP_TIMEOUT)
        assert code == 0, server.log_tail()
        response = answer[0]
        assert not isinstance(response, BaseException), response
        assert answered_at[0] > signalled_at, "the login was answered before the SIGTERM"
        # The normal answer to a good password: logged in, off to the next page.
        assert response.status_code in (302, 303), response.text[:2000]
        assert "idp_session=" in response.headers.get("Set-Cookie", ""), response.headers
        assert "Traceback" not in server.log()
        print(f"exit {took:.2f} s after SIGTERM")  # noqa: T201 - the figure for the report
    finally:
        server.stop()


def ask_for_a_reset(server: ServerProcess, email: str) -> None:
    http = requests.Session()
    page = http.get(server.base_url + "/forgot-password", timeout=HTTP_TIMEOUT)
    asked = http.post(
        server.base_url + "/forgot-password",
        data={"csrf_token": csrf_token(page.text), "email": email},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert asked.status_code == 200, asked.text[:2000]


def test_a_mail_being_delivered_at_sigterm_is_delivered_once_and_marked_sent(
    deployment: Deployment,
) -> None:
    handler = deployment.smtp.handler
    assert isinstance(handler, HoldingCollector)
    handler.data_started.clear()
    first, second = deployment.email, deployment.create_person()
    server = deployment.start("granian-mail")
    try:
        ask_for_a_reset(server, first)
        # The sender is in the middle of the delivery: the SMTP server holds its DATA.
        assert handler.data_started.wait(HTTP_TIMEOUT), server.log_tail()
        assert handler.received == []
        # Another mail waits behind it in the outbox.
        ask_for_a_reset(server, second)
        server.process.send_signal(signal.SIGTERM)

        code, took = exit_code_within(server, EXIT_BOUND)
        assert code == 0, server.log_tail()
        print(f"exit {took:.2f} s after SIGTERM")  # noqa: T201 - the figure for the report
    finally:
        server.stop()
    # The one in progress was finished and recorded; the next one was not started.
    assert [r.rcpt_tos for r in handler.received] == [[first]]
    [(sent_at, attempts, claimed_until)] = deployment.outbox(first)
    assert sent_at is not None and attempts == 0 and claimed_until is None
    assert deployment.outbox(second) == [(None, 0, None)]

    # A new instance on the same database delivers the waiting mail, and not the sent one
    # again.
    again = deployment.start("granian-mail-restarted")
    try:
        requests.get(again.base_url + "/readyz", timeout=HTTP_TIMEOUT)  # starts its sender
        deadline = time.monotonic() + HTTP_TIMEOUT + DATA_HOLD
        while len(handler.received) < 2:
            assert time.monotonic() < deadline, again.log_tail()
            time.sleep(0.05)
        assert [r.rcpt_tos for r in handler.received] == [[first], [second]]
        assert deployment.outbox(second)[0][0] is not None
    finally:
        again.stop()
