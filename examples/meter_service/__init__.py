"""Example relying app: the meter-reading service.

- `POST /readings` (scope `meter_readings.submit`), form or JSON: `meter` (a meter number
  of the acting customer) and `value` (the register in m³: a non-negative number with at
  most 8 digits before the decimal point and at most 3 after it, as gas meters show
  litres; "1234.5", 1234.5 and "1234,5" are the same). Answers 201 with the stored
  reading: the customer comes from the token, `submitted_by` is the token's `sub`.
  Bad input answers 400 `invalid_request`; a meter that is not the acting customer's is
  bad input too (the same answer as for one that does not exist).
- `GET /readings` (scope `meter_readings.submit` too: the readings belong to the right to
  report them; a user who may only view invoices sees neither form nor history) lists the
  acting customer's meters and the readings submitted for that customer, newest first.

Nothing in the request chooses the customer: only the token does. Storage is in memory,
per app instance: readings are lost when the process stops (enough for an example).

Run: `IDP_ISSUER=http://127.0.0.1:5000 python -m examples.meter_service` (port 5002,
audience `urn:gas-portal:meter-readings`; env PORT and AUDIENCE change them).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from decimal import Decimal
from typing import Any

from flask import Flask, Response, jsonify, request

from examples import service_app
from examples.resource_server import current_token, protect, require_scope

DEFAULT_AUDIENCE = "urn:gas-portal:meter-readings"
DEFAULT_PORT = 5002
REALM = "meter-readings"
SCOPE = "meter_readings.submit"

# Demo meters by customer number (the demo customers of `idp demo seed`).
METERS: dict[str, list[str]] = {
    "100200300": ["GM-1001"],
    "200300400": ["GM-2001", "GM-2002"],
    "300400500": ["GM-3001"],
}
VALUE = re.compile(r"[0-9]{1,8}(?:[.,][0-9]{1,3})?")  # ASCII digits only


class BadReading(ValueError):
    """The submitted reading is not acceptable; the message says why."""


def parse_reading(data: Any, meters: list[str]) -> tuple[str, str]:
    """(meter, value as a decimal string) from a submitted form or JSON object."""
    if not hasattr(data, "get"):
        raise BadReading("Send a form or a JSON object with meter and value.")
    meter, raw = data.get("meter"), data.get("value")
    if not isinstance(meter, str) or not meter.strip():
        raise BadReading("meter is missing: give the meter number.")
    if meter.strip() not in meters:
        raise BadReading("meter: the customer has no meter with this number.")
    if raw is None or raw == "":
        raise BadReading("value is missing: give the meter register in m³.")
    text = "" if isinstance(raw, bool) else str(raw).strip()  # JSON true is no number
    if not isinstance(raw, str | int | float) or not VALUE.fullmatch(text):
        raise BadReading(
            "value must be a non-negative number in m³ with at most 8 digits "
            "before the decimal point and 3 after it, e.g. 1234.567."
        )
    return meter.strip(), str(Decimal(text.replace(",", ".")))


def create_app(issuer: str, audience: str = DEFAULT_AUDIENCE, jwks_url: str | None = None) -> Flask:
    app = service_app(__name__)
    protect(app, issuer=issuer, audience=audience, realm=REALM, jwks_url=jwks_url)
    readings: list[dict[str, Any]] = []  # this instance's store
    lock = threading.Lock()

    @app.post("/readings")
    @require_scope(SCOPE)
    def submit() -> tuple[Response, int]:
        token = current_token()
        data = request.get_json(silent=True) if request.is_json else request.form
        try:
            meter, value = parse_reading(data, METERS.get(token.customer.number, []))
        except BadReading as exc:
            return jsonify(error="invalid_request", error_description=str(exc)), 400
        with lock:
            reading = {
                "id": len(readings) + 1,
                "customer_number": token.customer.number,
                "meter": meter,
                "value": value,
                "unit": "m3",
                "submitted_by": token.subject,
                "client_id": token.client_id,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            readings.append(reading)
        return jsonify(reading), 201

    @app.get("/readings")
    @require_scope(SCOPE)
    def history() -> Response:
        number = current_token().customer.number
        with lock:
            mine = [r for r in reversed(readings) if r["customer_number"] == number]
        return jsonify(meters=METERS.get(number, []), readings=mine)

    return app
