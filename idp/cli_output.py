"""How admin commands print: a table (or key/value lines) for people, JSON for scripts, a
refusal as one line, and the report of a CSV import. Shared by every feature's cli.py."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import current_app

from idp.csv_import import ImportDataError, ImportReport
from idp.db import db_session

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

# The language of the mail a command sends (and stored on a new account for its later
# mails and pages); checked against settings.locales by mail_locale().
locale_option = click.option(
    "--locale",
    "locale",
    default=None,
    help="Language of the mail and of the new account, one of the locales setting "
    "(default: default_locale).",
)


def mail_locale(value: str | None) -> str:
    """--locale as given when the IdP speaks it, else a usage error; none: default_locale."""
    settings = current_app.config["IDP_SETTINGS"]
    if value is None:
        return str(settings.default_locale)
    if value not in settings.locales:
        raise click.BadParameter(
            f"{value!r} is not one of {', '.join(settings.locales)}", param_hint="'--locale'"
        )
    return value


def one_line_errors(
    *errors: type[Exception],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command decorator: one of `errors` (a refusal of the domain) rolls the session back
    and becomes one clear line and a non-zero exit, never a traceback."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except errors as exc:
                db_session().rollback()
                raise click.ClickException(str(exc)) from None

        return wrapper

    return decorator


def print_rows(
    rows: list[dict[str, Any]] | dict[str, Any], as_json: bool, columns: Iterable[str] | None = None
) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if isinstance(rows, dict):
        width = max(len(k) for k in rows)
        for key, value in rows.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            click.echo(f"{key.ljust(width)}  {'' if shown is None else shown}")
        return
    if not rows:
        click.echo("(none)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


# --- CSV imports -----------------------------------------------------------------------------


class ProgressBars:
    """One click progress bar per phase of an import ("checking rows", "writing", …)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.bar: ProgressBar[Any] | None = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.phase, self.done = phase, 0
            self.bar = click.progressbar(length=max(total, 1), label=phase.ljust(28))
            self.bar.__enter__()
        if self.bar is not None and done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def on_terminal() -> bool:
    return sys.stdout.isatty()


def run_import(
    file: Path,
    importer: Callable[..., ImportReport],
    *,
    skip_invalid: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Read FILE, run `importer(session, data, skip_invalid=, dry_run=, progress=)`, commit
    what it wrote, and print the report the same way for every CSV import command."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror}") from None
    # A progress bar is for a person watching a terminal, never for scripts or --json.
    bars = ProgressBars() if on_terminal() and not as_json else None
    session = db_session()
    try:
        report = importer(session, data, skip_invalid=skip_invalid, dry_run=dry_run, progress=bars)
    except ImportDataError as exc:
        session.rollback()
        raise click.ClickException(f"{file}: {exc}") from None
    finally:
        if bars is not None:
            bars.close()
    if report.written:
        session.commit()
    else:
        session.rollback()

    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        for error in report.errors:
            for reason in error.reasons:
                click.echo(f"line {error.line}: {reason}")
        note = "" if report.imported else " (nothing written)"
        click.echo(report.summary() + note)
    if report.refused:
        click.echo(
            f"{file}: nothing imported because of {report.rejected} bad row(s) "
            "(--skip-invalid imports the valid rows)",
            err=True,
        )
        click.get_current_context().exit(1)
