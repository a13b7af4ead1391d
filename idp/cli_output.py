"""How admin commands print: a table (or key/value lines) for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


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
