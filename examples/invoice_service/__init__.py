"""Example relying app: the invoice service.

`GET /invoices` (scope `invoices.read`) lists the invoices of the customer the token's user
acts for, and `GET /invoices/<number>` shows one of them: 404 for any invoice that is not
that customer's, so another customer's invoice is never revealed, not even its existence.
Nothing in the request chooses the customer: only the token (its `customer.number`) does.

Run: `IDP_ISSUER=http://127.0.0.1:5000 python -m examples.invoice_service` (port 5001,
audience `urn:gas-portal:invoices`; env PORT and AUDIENCE change them). The invoices are
demo data, fixed in this module.
"""

from __future__ import annotations

from flask import Flask, Response, abort, jsonify

from examples import service_app
from examples.resource_server import current_token, protect, require_scope

DEFAULT_AUDIENCE = "urn:gas-portal:invoices"
DEFAULT_PORT = 5001
REALM = "invoices"
SCOPE = "invoices.read"


def _invoice(
    number: str, period: str, amount_eur: str, due_date: str, paid: bool
) -> dict[str, object]:
    # Amounts are decimal strings: money is never a float.
    return {
        "number": number,
        "period": period,
        "amount_eur": amount_eur,
        "due_date": due_date,
        "paid": paid,
    }


# Demo invoices by customer number (the demo customers of `idp demo seed`).
INVOICES: dict[str, list[dict[str, object]]] = {
    "100200300": [
        _invoice("GI-2026-000101", "2026-01", "84.17", "2026-02-20", True),
        _invoice("GI-2026-000102", "2026-02", "91.40", "2026-03-20", True),
        _invoice("GI-2026-000103", "2026-03", "62.05", "2026-04-20", False),
    ],
    "200300400": [
        _invoice("GI-2026-000201", "2026-01", "132.80", "2026-02-20", True),
        _invoice("GI-2026-000202", "2026-02", "118.33", "2026-03-20", False),
    ],
    "300400500": [
        _invoice("GI-2026-000301", "2026-01", "45.00", "2026-02-20", True),
        _invoice("GI-2026-000302", "2026-02", "47.61", "2026-03-20", True),
        _invoice("GI-2026-000303", "2026-03", "39.12", "2026-04-20", False),
    ],
}


def create_app(issuer: str, audience: str = DEFAULT_AUDIENCE, jwks_url: str | None = None) -> Flask:
    app = service_app(__name__)
    protect(app, issuer=issuer, audience=audience, realm=REALM, jwks_url=jwks_url)

    @app.get("/invoices")
    @require_scope(SCOPE)
    def invoices() -> Response:
        customer = current_token().customer
        return jsonify(
            customer={"number": customer.number, "name": customer.name},
            invoices=INVOICES.get(customer.number, []),
        )

    @app.get("/invoices/<invoice_number>")
    @require_scope(SCOPE)
    def invoice(invoice_number: str) -> Response:
        mine = INVOICES.get(current_token().customer.number, [])
        found = next((i for i in mine if i["number"] == invoice_number), None)
        if found is None:
            abort(404, "The customer has no invoice with this number.")
        return jsonify(found)

    return app
