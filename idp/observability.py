"""Request ids, one JSON access-log line per request, and Prometheus metrics.

`RequestLog` is the WSGI wrapper just inside proxies.TrustedProxies (so the client's
address is known) and outside the fast paths (so they are measured too): it gives every
request an id (idp.request_ids), sends it back as X-Request-ID, measures the request and
writes one line to the "idp.access" logger, and answers `GET /metrics` to a scraper that
brings the `metrics_token`.

Metrics are counted by the small helpers below (count_login, count_tokens, ...), which do
nothing while metrics are off. With several granian workers each process writes its own
files in one directory per server run (prometheus_client's multiprocess mode), and a
scrape, answered by whichever worker, sums them all. Never a label value a caller makes
up: routes are URL rules, providers are configured ones, methods and statuses are bounded.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import json.encoder
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, request

from idp.db import utcnow
from idp.request_ids import CLIENT_ID_KEY, ENVIRON_KEY, HEADER, ROUTE_KEY, accept
from idp.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

access_log = logging.getLogger("idp.access")
log = logging.getLogger("idp.observability")

METRICS_PATH = "/metrics"
# The route label of a request no URL rule matched (a 404, a 405): never its path, which
# anybody can vary without end.
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Latency buckets (seconds): a refresh on the fast path takes about a millisecond, a
# password login (argon2) a few hundred, a bank callback up to upstream_timeout.
# A JSON string literal (escaped and quoted), as json.dumps writes it with ensure_ascii off.
_quote: Callable[[str], str] = json.encoder.encode_basestring
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The id of the request this thread is serving, for every idp log line written meanwhile.
_current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


# --- log lines ----------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the request id of
    the request being served; an access line carries its fields instead of a message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access", None)
        if isinstance(fields, dict) and not record.exc_info:
            return self._access_line(record, fields)
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
            request_id = _current_request_id.get()
            if request_id:
                line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def _access_line(record: logging.LogRecord, fields: dict[str, Any]) -> str:
        """The same object as json.dumps would write, joined by hand: one is written per
        request, the replayed documents' included, and this costs a fraction."""
        parts = [
            f'"time":"{_utc(record.created)}"',
            f'"level":"{record.levelname}"',
            f'"logger":{_quote(record.name)}',
        ]
        for name, value in fields.items():
            if isinstance(value, str):
                parts.append(f'"{name}":{_quote(value)}')
            elif value is None:
                parts.append(f'"{name}":null')
            else:  # the status (int) and the duration (float)
                parts.append(f'"{name}":{value!r}')
        return "{" + ",".join(parts) + "}"


class TextFormatter(logging.Formatter):
    """`[LEVEL] logger: message`, with `(request <id>)` while a request is served."""

    def __init__(self) -> None:
        super().__init__("[%(levelname)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = _current_request_id.get()
        if request_id:
            text += f" (request {request_id})"
        return text


def _utc(created: float) -> str:
    """2026-12-04T19:02:01.123Z"""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class _OurHandler(logging.StreamHandler):
    """The handler this module puts on the "idp" logger (told apart from others')."""


def configure_logging(settings: Settings) -> None:
    """The idp loggers write to stderr in `log_format`, unless logging is configured
    already (a root handler: an operator's configuration, or pytest), which is left alone.
    The access log is written at INFO whatever `log_level` says: one line per request is
    what a log of a production server is for."""
    logging.getLogger("idp").setLevel(settings.log_level)
    access_log.setLevel(logging.INFO)
    idp_logger = logging.getLogger("idp")
    ours = [h for h in idp_logger.handlers if isinstance(h, _OurHandler)]
    if not ours and logging.getLogger().handlers:
        return
    handler = ours[0] if ours else _OurHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    if not ours:
        idp_logger.addHandler(handler)


# --- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Metrics:
    directory: Path
    requests: Counter
    latency: Histogram
    logins: Counter
    tokens: Counter
    reuse: Counter
    upstream_errors: Counter
    throttled: Counter
    mail_deliveries: Counter


# Process-wide, as prometheus_client's values are: None while metrics are off.
_metrics: _Metrics | None = None


def metrics_run_dir(settings: Settings) -> Path:
    """This server run's directory under `metrics_dir`: one per parent process (granian's
    main process, whose workers all write here), so a restart starts from zero and
    the files of another run are never summed in."""
    base = Path(settings.metrics_dir)
    if not base.is_absolute():
        base = settings.instance_dir / base
    return base / f"run-{os.getppid()}"


def _remove_dead_runs(base: Path, keep: Path) -> None:
    """The directories of runs whose main process is gone (prometheus_client: "wipe the
    directory between runs"); a worker of a live run never loses its siblings' files."""
    for path in base.glob("run-*"):
        if path == keep:
            continue
        try:
            os.kill(int(path.name.removeprefix("run-")), 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def configure_metrics(settings: Settings) -> None:
    """Turn counting on (metrics_token set) in prometheus_client's multiprocess mode. The
    first configuration of a process fixes its directory (the values are process-wide)."""
    global _metrics
    if not settings.metrics_token or _metrics is not None:
        return
    directory = metrics_run_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_dead_runs(directory.parent, directory)
    # Read by prometheus_client when it opens each process's files; it must be set
    # before the first metric is made.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import Counter, Histogram, values

    if not getattr(values.ValueClass, "_multiprocess", False):
        # Imported earlier in this process (without the variable): switch it over.
        values.ValueClass = values.MultiProcessValue()
    _metrics = _Metrics(
        directory=directory,
        requests=Counter(
            "idp_http_requests", "HTTP requests answered", ["route", "method", "status"]
        ),
        latency=Histogram(
            "idp_http_request_duration_seconds",
            "Time to answer a request, body included",
            ["route", "status"],
            buckets=_BUCKETS,
        ),
        logins=Counter("idp_logins", "Logins by method and outcome", ["method", "outcome"]),
        tokens=Counter("idp_tokens_issued", "Token responses issued, by grant", ["grant"]),
        reuse=Counter(
            "idp_token_reuse_detected",
            "A used refresh token or authorization code presented again (its tokens revoked)",
            ["kind"],
        ),
        upstream_errors=Counter(
            "idp_upstream_errors", "Bank and eSignature logins that failed", ["provider", "kind"]
        ),
        throttled=Counter("idp_throttled", "Attempts refused for throttling", ["what"]),
        mail_deliveries=Counter(
            "idp_mail_deliveries", "Outbox delivery attempts by outcome", ["outcome"]
        ),
    )


def count_login(method: str, outcome: str) -> None:
    """method: password, bank, esignature (upstream when unknown); outcome: ok, failed,
    throttled."""
    if _metrics is not None:
        _metrics.logins.labels(method, outcome).inc()


def count_tokens(grant: str) -> None:
    """A successful token response of this grant type."""
    if _metrics is not None:
        _metrics.tokens.labels(grant).inc()


def count_reuse(kind: str) -> None:
    """kind: refresh_token or authorization_code."""
    if _metrics is not None:
        _metrics.reuse.labels(kind).inc()


def count_upstream_error(provider: str, kind: str) -> None:
    """provider: a configured provider's name; kind: config (cannot be built), start
    (the login could not start), callback (the provider's answer failed)."""
    if _metrics is not None:
        _metrics.upstream_errors.labels(provider, kind).inc()


def count_throttled(what: str) -> None:
    if _metrics is not None:
        _metrics.throttled.labels(what).inc()


def count_mail_delivery(outcome: str) -> None:
    """outcome: sent or failed (it will be retried)."""
    if _metrics is not None:
        _metrics.mail_deliveries.labels(outcome).inc()


class _OutboxCollector:
    """The outbox's depth and its oldest mail's age, read from the database at each scrape
    (one indexed query): true for every instance, however many count."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy.exc import SQLAlchemyError

        from idp.mail import outbox_backlog

        try:
            depth, oldest = outbox_backlog(self.engine)
        except SQLAlchemyError as exc:
            log.warning("metrics: the outbox cannot be read: %s", type(exc).__name__)
            return
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("idp_mail_outbox_depth", "Mails not delivered yet", value=depth)
        yield GaugeMetricFamily(
            "idp_mail_outbox_oldest_age_seconds",
            "Age of the oldest mail not delivered yet (0: none)",
            value=max(age, 0.0),
        )


def _registry(directory: Path, engine: Any) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    registry.register(_OutboxCollector(engine))
    return registry


# --- the WSGI wrapper ---------------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Body:
    """The app's body, passed through; the request is logged once it is sent or closed,
    whichever comes first (so the duration includes sending a streamed body)."""

    __slots__ = ("_done", "_result")

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self._result = result
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        yield from self._result
        self._finish()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()


class RequestLog:
    """Request id, X-Request-ID, one access line and the metrics of every request."""

    def __init__(
        self,
        app: WSGIApp,
        settings: Settings,
        engine: Any,
        fast_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.fast_paths = fast_paths
        self.metrics_token = settings.metrics_token.encode()
        self.metrics = _metrics
        # The labelled children by (route, method, status): labels() costs a lock each.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._registry = (
            _registry(_metrics.directory, engine)
            if _metrics is not None and settings.metrics_token
            else None
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = accept(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENVIRON_KEY] = request_id
        _current_request_id.set(request_id)
        status: list[int] = [500]
        header = (HEADER, request_id)

        def our_start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], Any]:
            status[0] = int(status_line[:3])
            headers = [*headers, header]
            write: Callable[[bytes], Any] = (
                start_response(status_line, headers, exc_info)
                if exc_info
                else start_response(status_line, headers)
            )
            return write

        def done() -> None:
            try:
                self._finish(environ, status[0], started)
            finally:
                # Not reset(): a server may close the body in another thread's context.
                _current_request_id.set(None)

        try:
            if self._registry is not None and environ.get("PATH_INFO") == METRICS_PATH:
                environ[ROUTE_KEY] = METRICS_PATH
                result = self._scrape(environ, our_start_response)
            else:
                result = self.app(environ, our_start_response)
        except BaseException:
            done()
            raise
        if isinstance(result, list):  # the fast paths' bodies: nothing left to send
            done()
            return result
        return _Body(result, done)

    def _route(self, environ: dict[str, Any]) -> str:
        route = environ.get(ROUTE_KEY)
        if route:
            return str(route)
        path = environ.get("PATH_INFO", "")
        return path if path in self.fast_paths else UNMATCHED

    def _finish(self, environ: dict[str, Any], status: int, started: float) -> None:
        # Kept cheap: it runs for every replayed document too (tens of thousands a second).
        seconds = time.perf_counter() - started
        route = self._route(environ)
        method = environ.get("REQUEST_METHOD", "")
        if method not in _METHODS:
            method = "OTHER"
        if self.metrics is not None:
            key = (route, method, status)
            children = self._children.get(key)
            if children is None:  # bounded: the routes, methods and statuses there are
                children = self._children[key] = (
                    self.metrics.requests.labels(route, method, str(status)),
                    self.metrics.latency.labels(route, str(status)),
                )
            children[0].inc()
            children[1].observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            client_id = environ.get(CLIENT_ID_KEY)
            remote = environ.get("REMOTE_ADDR")
            ms = round(seconds * 1000, 2)
            # Never the query string or a header value: they carry codes and tokens.
            fields = {
                "request_id": environ.get(ENVIRON_KEY),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": ms,
                "client_id": client_id,
                "remote_addr": remote,
            }
            # A record made here, not by Logger.info: no caller's frame to look up.
            record = logging.LogRecord(
                access_log.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %d %.2f ms client=%s from %s",
                (method, route, status, ms, client_id or "-", remote),
                None,
            )
            record.access = fields
            access_log.handle(record)

    def _scrape(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """GET /metrics with `Authorization: Bearer <metrics_token>` (compared in constant
        time): the Prometheus text format; 401 otherwise."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        scheme, _sep, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        authorized = scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self.metrics_token
        )
        if not authorized:
            body = b"A bearer token is required.\n"
            start_response(
                "401 UNAUTHORIZED",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", 'Bearer realm="metrics"'),
                    ("Cache-Control", "no-store"),
                ],
            )
            return [body]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response(
                "405 METHOD NOT ALLOWED", [("Allow", "GET, HEAD"), ("Content-Length", "0")]
            )
            return [b""]
        assert self._registry is not None
        body = generate_latest(self._registry)
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def _note_route() -> None:
    """Flask knows the URL rule: the access line and the metrics use it, not the path."""
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED


def init_app(app: Flask) -> None:
    """Logging and metrics on, and the route of each Flask request noted (first of the
    before-request hooks, so a request stopped by a later one has it too)."""
    settings: Settings = app.config["IDP_SETTINGS"]
    configure_logging(settings)
    configure_metrics(settings)
    app.before_request_funcs.setdefault(None, []).insert(0, _note_route)


def install(app: Flask, fast_paths: frozenset[str]) -> None:
    """Wrap the app (fast paths included): create_app calls it after fastpath.install."""
    app.wsgi_app = RequestLog(  # type: ignore[method-assign]  # Flask's middleware idiom
        app.wsgi_app, app.config["IDP_SETTINGS"], app.extensions["idp.engine"], fast_paths
    )
