"""Bench data: a pool of distinct refresh tokens and a set of valid access tokens.

Run by bench/run.py (with the same IDP_* environment as the server it benchmarks), after
`idp db upgrade`, `idp clients add` and `idp users create`:

    python bench/seed.py --client-id ID --email E --pool 200000 --access 1000 --out DIR

Logging in through the authorization endpoint for every token would take hours, so the
first family goes through the project's own services (an authorization code stored by
tokens.store_authorization_code, the family started by tokens.start_family, its refresh
token issued by tokens.issue_refresh_token); the rest are bulk-inserted with the same
columns and the same hashing (idp.security.hash_secret), all in one transaction.
Each refresh token is the only one of its family, so a token rotated during the run
never touches another token of the pool.

Writes DIR/refresh_tokens.txt and DIR/access_tokens.txt, one token a line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from sqlalchemy import insert, select

from idp import create_app
from idp.clients import find_client
from idp.db import db_session, utcnow
from idp.memberships.acting import acting_for
from idp.models import Customer, Membership, RefreshToken, TokenFamily, User
from idp.oidc import tokens
from idp.security import hash_secret, new_token

SCOPE = "openid profile email"
BATCH = 10_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--pool", type=int, default=200_000, help="refresh tokens")
    parser.add_argument("--access", type=int, default=1_000, help="access tokens (userinfo)")
    parser.add_argument(
        "--access-lifetime",
        type=int,
        default=7_200,
        help="seconds the access tokens stay valid (the run must fit in it)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    app = create_app({"access_token_lifetime": args.access_lifetime})
    settings = app.config["IDP_SETTINGS"]
    started = time.monotonic()
    with app.app_context():
        session = db_session()
        client = find_client(session, args.client_id)
        user = session.scalar(select(User).where(User.email == args.email.lower()))
        if client is None or user is None:
            print("seed: client or user not found", file=sys.stderr)
            return 1
        now = utcnow()
        auth_time = int(now.timestamp())
        # The user acts for a customer, as every portal user does: refresh and userinfo
        # then read the membership too (idp.memberships.acting).
        customer = Customer(
            number=f"bench-{new_token(6)}", kind="person", name="Bench User", personal_code=None
        )
        session.add(customer)
        session.flush()
        session.add(Membership(user_id=user.id, customer_id=customer.id, role="contractor"))
        session.flush()
        acting = acting_for(session, user.id, customer.id, now)

        # One real code -> family -> refresh token through the services.
        code_value = tokens.store_authorization_code(
            session,
            settings,
            client=client,
            user_id=user.id,
            customer_id=customer.id,
            redirect_uri="http://127.0.0.1/cb",
            scope=SCOPE,
            nonce=None,
            code_challenge=None,
            code_challenge_method=None,
            sid=None,
            auth_time=auth_time,
            acr="low",
            amr=["pwd"],
        )
        session.flush()
        code = tokens.find_authorization_code(session, code_value)
        assert code is not None
        tokens.consume_authorization_code(session, code)
        template = tokens.start_family(session, settings, client, code)
        session.flush()
        refresh = [tokens.issue_refresh_token(session, settings, template)]
        session.flush()

        # The rest: same columns, same hashing, bulk insert.
        family_expiry = now + dt.timedelta(seconds=settings.refresh_token_absolute_lifetime)
        token_expiry = min(
            now + dt.timedelta(seconds=settings.refresh_token_idle_lifetime), family_expiry
        )
        access_families: list[str] = []
        total = args.pool - 1 + args.access
        for start in range(0, total, BATCH):
            families, rows = [], []
            for i in range(start, min(start + BATCH, total)):
                family_id = new_token(18)
                families.append(
                    {
                        "id": family_id,
                        "client_id": client.id,
                        "user_id": user.id,
                        "customer_id": customer.id,
                        "scope": SCOPE,
                        "sid": None,
                        "auth_time": auth_time,
                        "acr": "low",
                        "amr": ["pwd"],
                        "created_at": now,
                        "expires_at": family_expiry,
                    }
                )
                if i < args.pool - 1:
                    value = new_token(32)
                    refresh.append(value)
                    rows.append(
                        {
                            "token_hash": hash_secret(value),
                            "family_id": family_id,
                            "created_at": now,
                            "expires_at": token_expiry,
                        }
                    )
                else:
                    access_families.append(family_id)
            session.execute(insert(TokenFamily), families)
            if rows:
                session.execute(insert(RefreshToken), rows)

        access = []
        # In batches: PostgreSQL takes at most 65,535 bound parameters per statement.
        for start in range(0, len(access_families), BATCH):
            for family in session.scalars(
                select(TokenFamily).where(
                    TokenFamily.id.in_(access_families[start : start + BATCH])
                )
            ):
                token, _ = tokens.mint_access_token(
                    app.extensions["idp.keyring"],
                    settings,
                    client=client,
                    subject=user.subject,
                    scope=SCOPE,
                    family=family,
                    acting=acting,
                )
                access.append(token)
        session.commit()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "refresh_tokens.txt").write_text("\n".join(refresh) + "\n")
    (args.out / "access_tokens.txt").write_text("\n".join(access) + "\n")
    app.extensions["idp.engine"].dispose()
    print(
        f"seeded {len(refresh)} refresh tokens and {len(access)} access tokens "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
