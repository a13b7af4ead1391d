"""`idp demo seed` (what `make run` calls): demo data a newcomer can try every flow with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from idp.customers.services import find_customer_for_registration
from idp.models import Client, Customer, User


def test_seed_is_idempotent_and_prints_how_to_try_it(
    app: Flask, db: Session, make_app: Callable[..., Flask]
) -> None:
    demo = make_app(mode="demo")
    first = demo.test_cli_runner().invoke(args=["demo", "seed"])
    assert first.exit_code == 0, first.output
    assert "demo login: janis.berzins@example.lv / demo-password-2026" in first.output
    assert "customer 200300400 with personal code 010190-10001" in first.output
    again = demo.test_cli_runner().invoke(args=["demo", "seed"])
    assert again.exit_code == 0 and "secret (shown once)" not in again.output

    counts: dict[str, Any] = {
        model.__name__: db.scalar(select(func.count()).select_from(model))
        for model in (Customer, User, Client)
    }
    assert counts == {"Customer": 3, "User": 1, "Client": 2}
    # The printed data really registers (the contract number works as well).
    assert find_customer_for_registration(db, "200300400", "010190-10001") is not None
    assert find_customer_for_registration(db, "L-300400500", "32098765438") is not None
    db.commit()


def test_seed_refuses_outside_demo_mode(runner: Any) -> None:
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code != 0 and "only seeded in demo mode" in result.output
