"""CPU per request of refresh_token, userinfo, client_credentials, in process (no HTTP, no wrk).

    .venv/bin/python bench/cpu.py                     # SQLite (a new file in bench/out/)
    IDP_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench_cpu \
        .venv/bin/python bench/cpu.py                 # PostgreSQL (database dropped, recreated)

On a shared machine the req/s of `make bench` move with whatever else runs; the CPU time
this process spends per request (`time.process_time()`, so neither other processes nor
the database server count) is a steadier figure for comparing changes. Every request goes
through the whole WSGI app (fast paths, then Flask) with a prebuilt environ, as granian
would call it; each refresh request presents a token of the seeded pool never used before.
Prints µs of CPU and of wall time per request, the best of --rounds rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402 (bench/run.py: database preparation and seeding)


def environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Any, env: dict[str, Any]) -> str:
    status: list[str] = []

    def start_response(s: str, _headers: Any, _exc: Any = None) -> None:
        status.append(s)

    result = app(env, start_response)
    b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return status[0]


def measure(name: str, app: Any, make_env: Any, n: int, rounds: int) -> None:
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        envs = [make_env() for _ in range(n)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for env in envs:
            status = call(app, env)
            if not status.startswith("200"):
                raise SystemExit(f"{name}: answer {status}")
        cpu = (time.process_time() - cpu0) / n
        wall = (time.perf_counter() - wall0) / n
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
    print(
        f"{name:20} {best_cpu * 1e6:8.0f} µs CPU/request   {best_wall * 1e6:8.0f} µs wall"
        f"   (best of {rounds} x {n})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--endpoints",
        default="refresh_token,refresh_token_es256,userinfo,userinfo_cold",
        help="refresh_token (RS256 ID token), refresh_token_es256, userinfo "
        "(signature remembered), userinfo_cold (verified every time), client_credentials",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one more round per endpoint; print the top functions",
    )
    args = parser.parse_args()
    endpoints = args.endpoints.split(",")
    # Its own files, not those of `make bench`, so both can run side by side.
    run.OUT = run.OUT / "cpu"
    run.OUT.mkdir(parents=True, exist_ok=True)
    url = os.environ.get("IDP_DATABASE_URL")
    if url is None:
        path = run.OUT / "idp-cpu.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url, db = f"sqlite:///{path}", "sqlite"
    else:
        url, db = run.prepare_database(url)
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "IDP_MODE": "production",
        "IDP_ISSUER": "http://127.0.0.1",
        "IDP_DATABASE_URL": url,
        "IDP_SECRET_KEY": secrets.token_urlsafe(48),
        "IDP_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "IDP_INSTANCE_PATH": str(run.OUT / "instance"),
        "IDP_LOG_LEVEL": "WARNING",
        "IDP_SMTP_HOST": "127.0.0.1",
    }
    env.pop("IDP_CONFIG", None)
    pool = args.n * (args.rounds + 2) + 10
    print(f"database: {db}; seeding {pool:,} refresh tokens per client", flush=True)
    data = run.seed(env, pool)
    os.environ.update(env)

    from idp import create_app

    app = create_app()
    wsgi = app.wsgi_app
    once = {name: iter(pool.path.read_text().split()) for name, pool in data.pools.items()}
    access = {
        name: [t for t in path.read_text().split() if t] for name, path in data.access_files.items()
    }
    counter = iter(range(10**9))

    def refresh_env(name: str) -> dict[str, Any]:
        body = f"grant_type=refresh_token&refresh_token={next(once[name])}".encode()
        return environ("POST", "/token", {"Authorization": data.basic_for(name)}, body)

    def cycle(name: str) -> str:
        tokens = access[name]
        return tokens[next(counter) % len(tokens)]

    def userinfo_env(token: str) -> dict[str, Any]:
        return environ("GET", "/userinfo", {"Authorization": f"Bearer {token}"})

    makers = {
        "refresh_token": lambda: refresh_env("refresh_token"),
        "refresh_token_es256": lambda: refresh_env("refresh_token_es256"),
        "userinfo": lambda: userinfo_env(cycle("userinfo")),
        "userinfo_cold": lambda: userinfo_env(cycle("userinfo_cold")),
        "client_credentials": lambda: environ(
            "POST",
            "/token",
            {"Authorization": data.basic_for("refresh_token")},
            b"grant_type=client_credentials",
        ),
    }
    for name in endpoints:
        # Warm-up: first requests load keys, fill caches, compile statements.
        for _ in range(50 if name.startswith("userinfo") else 10):
            call(wsgi, makers[name]())
        measure(name, wsgi, makers[name], args.n, args.rounds)
        if args.profile:
            import cProfile
            import pstats

            envs = [makers[name]() for _ in range(args.n)]
            profiler = cProfile.Profile(time.process_time)  # CPU, not waiting
            profiler.enable()
            for one in envs:
                call(wsgi, one)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    app.extensions["idp.engine"].dispose()


if __name__ == "__main__":
    main()
