"""The log formatters and the clean-up of stopped runs' metric files (idp.observability)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from idp import observability
from idp.observability import JsonFormatter, TextFormatter
from idp.settings import PROJECT_ROOT


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("idp.mail", logging.WARNING, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_a_json_line_carries_the_request_being_served():
    observability._current_request_id.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(_record("mail 3 not delivered")))
    finally:
        observability._current_request_id.set(None)
    assert line["message"] == "mail 3 not delivered"
    assert line["request_id"] == "req-1"
    assert line["level"] == "WARNING" and line["logger"] == "idp.mail"
    assert line["time"].endswith("Z")
    outside = json.loads(JsonFormatter().format(_record("idle")))
    assert "request_id" not in outside


def test_an_access_line_is_its_fields_on_one_line():
    fields = {"request_id": "r", "route": "/token", "status": 200, "client_id": "c\nx"}
    text = JsonFormatter().format(_record("POST /token 200", access=fields))
    assert "\n" not in text
    line = json.loads(text)
    assert {k: line[k] for k in fields} == fields
    assert "message" not in line


def test_a_text_line_names_the_request():
    observability._current_request_id.set("req-2")
    try:
        text = TextFormatter().format(_record("hello"))
    finally:
        observability._current_request_id.set(None)
    assert text == "[WARNING] idp.mail: hello (request req-2)"


def test_the_directories_of_stopped_runs_go_and_live_ones_stay(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"run-{int(finished.stdout)}"
    alive = tmp_path / f"run-{os.getpid()}"
    mine = tmp_path / "run-1"  # pid 1 lives (whoever owns it)
    for path in (dead, alive, mine):
        path.mkdir()
        (path / "counter_7.db").write_bytes(b"")
    other = tmp_path / "not-a-run"
    other.mkdir()
    observability._remove_dead_runs(tmp_path, keep=mine)
    assert not dead.exists()
    assert alive.exists() and mine.exists() and other.exists()


def test_the_sample_dashboard_and_the_guide_name_only_metrics_that_exist():
    source = Path(observability.__file__).read_text()
    defined = set(re.findall(r'"(idp_[a-z_]+)"', source))
    dashboard = (PROJECT_ROOT / "docs" / "grafana-dashboard.json").read_text()
    guide = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    guide = guide.partition("### Metrics and logs")[2].partition("\n## ")[0]
    for text in (dashboard, guide):
        used = {
            re.sub(r"_(total|bucket|count|sum)$", "", name)
            for name in re.findall(r"\bidp_[a-z_]+", text)
        }
        assert used and used <= defined, used - defined
    assert {re.sub("_total$", "", n) for n in re.findall(r"`(idp_[a-z_]+)`", guide)} == defined
