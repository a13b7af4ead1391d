"""`make bench`: requests per second of the protocol endpoints on one server core.

    .venv/bin/python bench/run.py                      # SQLite (a new file in bench/out/)
    IDP_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench \
        .venv/bin/python bench/run.py                  # PostgreSQL (database dropped, recreated)

What it does:
1. checks that `wrk` is on PATH (as root it runs `apt-get install -y wrk`, else it stops);
2. prepares a fresh database, runs `idp db upgrade`, registers a confidential client
   (client_credentials + refresh_token) with RS256 ID tokens, the default, and one with
   ES256 ID tokens, creates a user, and seeds (bench/seed.py) for each client a pool of
   distinct refresh tokens, and for the first two sets of valid access tokens that
   userinfo cycles through: 1,000 (their verified signatures are remembered) and
   COLD_ACCESS, more than the key ring remembers (every signature is verified);
3. starts the IdP in production mode with granian (1 worker, pinned to CPU 0) for each
   --blocking-threads value, checks one answer of each endpoint, warms up, then runs
   `taskset -c 1 wrk -t1 -c32 -d10s --latency` on each endpoint (Lua scripts in bench/);
4. prints a table per value, keeps the best value, and rewrites this database's section
   of docs/performance.md (the rest of that file is left as it is).

Only 127.0.0.1 is ever contacted. A figure counts only when every answer was 200.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from idp.keys import VERIFIED_CACHE_SIZE

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
DOC = ROOT / "docs" / "performance.md"
BIN = Path(sys.executable).parent

# Targets (requests/s on one server core, from issue 2). The refresh_token target is for
# PostgreSQL; it is measured for a client with RS256 ID tokens (the default) and for one
# with ES256 ID tokens. userinfo is measured with tokens whose verified signature the key
# ring remembers, and "cold", with every signature verified (as on a token's first call).
TARGETS = {
    "discovery": 10_000,
    "jwks": 15_000,
    "client_credentials": 5_000,
    "refresh_token": 1_500,
    "refresh_token_es256": 1_500,
    "userinfo": 5_000,
    "userinfo_cold": 5_000,
}
ENDPOINTS = list(TARGETS)
REFRESH = ("refresh_token", "refresh_token_es256")
LABELS = {
    "discovery": "GET /.well-known/openid-configuration",
    "jwks": "GET /jwks.json",
    "client_credentials": "POST /token (client_credentials, Basic)",
    "refresh_token": "POST /token (refresh_token, rotation; RS256 ID token, the default)",
    "refresh_token_es256": "POST /token (refresh_token, rotation; ES256 ID token)",
    "userinfo": "GET /userinfo (Bearer; signature remembered)",
    "userinfo_cold": "GET /userinfo (Bearer; signature verified on every call)",
}
# Access tokens userinfo cycles through: few enough that the key ring remembers every
# verified signature, and (userinfo_cold) five times more than it remembers, so that a
# token comes round again only long after it was forgotten.
REPEATED_ACCESS = 1_000
COLD_ACCESS = 5 * VERIFIED_CACHE_SIZE


def die(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.exit(1)


def log(message: str) -> None:
    print(message, flush=True)


# --- tools ------------------------------------------------------------------------------------


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        die("wrk is not installed; install it (e.g. `sudo apt-get install -y wrk`) and rerun")
    log("wrk not found: installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    if not shutil.which("wrk"):
        die("apt-get install wrk did not put wrk on PATH")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- database and data -------------------------------------------------------------------------


def prepare_database(url: str | None) -> tuple[str, str]:
    """A fresh database: (url, label)."""
    if not url:
        path = OUT / "idp-bench.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}", "sqlite"

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        die("IDP_DATABASE_URL must be a PostgreSQL URL (or unset for SQLite)")
    name = parsed.database or ""
    if "bench" not in name:
        die(
            f"the database '{name}' is dropped and recreated: its name must contain 'bench' "
            "(e.g. .../idp_bench)"
        )
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        version = conn.execute(text("SHOW server_version")).scalar()
    admin.dispose()
    return url, f"postgresql {version}"


def idp(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "idp"), *args], cwd=ROOT, env=env, text=True, capture_output=True
    )
    if done.returncode != 0:
        die(f"`idp {' '.join(args[:2])}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass
class Pool:
    """Tokens of a file (one a line) that are each presented once, in order."""

    path: Path
    size: int
    next: int = 1  # 1-based line of the next unused token

    def take(self) -> str:
        if self.next > self.size:
            die(f"the token pool {self.path} is used up; rerun with a larger --pool")
        token = self.path.read_text().split("\n")[self.next - 1]
        self.next += 1
        return token


@dataclass
class Data:
    basic: dict[str, str]  # "RS256" / "ES256" -> the Authorization header of that client
    pools: dict[str, Pool]  # endpoint -> the tokens it uses once each
    access_files: dict[str, Path]  # "userinfo" / "userinfo_cold" -> the tokens it cycles through

    def access_token(self, endpoint: str = "userinfo") -> str:
        return self.access_files[endpoint].read_text().split("\n", 1)[0]

    def basic_for(self, endpoint: str) -> str:
        return self.basic["ES256" if endpoint == "refresh_token_es256" else "RS256"]


def _seed_client(
    env: dict[str, str], alg: str, email: str, pool: int, access: int
) -> tuple[str, Path]:
    """Registers the bench client of this ID-token algorithm and seeds its tokens into
    OUT/<alg>/: (Authorization header, that folder)."""
    client = json.loads(
        idp(
            env,
            "clients",
            "add",
            "--name",
            f"Bench {alg}",
            "--auth-method",
            "client_secret_basic",
            "--grant-type",
            "client_credentials,refresh_token",
            "--scope",
            "openid,profile,email",
            "--client-id",
            f"bench-{alg.lower()}",
            "--id-token-alg",
            alg,
            "--json",
        )
    )
    out = OUT / alg.lower()
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "seed.py"),
            "--client-id",
            client["client_id"],
            "--email",
            email,
            "--pool",
            str(pool),
            "--access",
            str(access),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        die(f"seeding failed: {done.stderr.strip()[-2000:]}")
    log(f"{alg} client: {done.stdout.strip()}")
    pair = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(pair).decode(), out


def seed(env: dict[str, str], pool: int) -> Data:
    """Both bench clients, a user acting for a customer, and the tokens: `pool` refresh
    tokens per client, REPEATED_ACCESS + COLD_ACCESS access tokens."""
    idp(env, "db", "upgrade")
    email = "bench@example.com"
    idp(
        env,
        "users",
        "create",
        "--email",
        email,
        "--name",
        "Bench User",
        "--password",
        secrets.token_urlsafe(18),
        "--json",
    )
    rs_basic, rs_out = _seed_client(env, "RS256", email, pool, REPEATED_ACCESS + COLD_ACCESS)
    es_basic, es_out = _seed_client(env, "ES256", email, pool, 0)
    access = (rs_out / "access_tokens.txt").read_text().split()
    repeated, cold = OUT / "access_repeated.txt", OUT / "access_cold.txt"
    repeated.write_text("\n".join(access[:REPEATED_ACCESS]) + "\n")
    cold.write_text("\n".join(access[REPEATED_ACCESS:]) + "\n")
    return Data(
        basic={"RS256": rs_basic, "ES256": es_basic},
        pools={
            "refresh_token": Pool(rs_out / "refresh_tokens.txt", pool),
            "refresh_token_es256": Pool(es_out / "refresh_tokens.txt", pool),
        },
        access_files={"userinfo": repeated, "userinfo_cold": cold},
    )


# --- the server ---------------------------------------------------------------------------------


class Server:
    def __init__(
        self,
        env: dict[str, str],
        port: int,
        threads: int,
        tag: str,
        extra: list[str] | None = None,
        target: str = "wsgi:app",
    ) -> None:
        self.port = port
        self.command = [
            "taskset",
            "-c",
            "0",
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--blocking-threads",
            str(threads),
            "--no-ws",
            "--log-level",
            "warning",
            *(extra or []),
            target,
        ]
        self.log_path = OUT / f"server-{tag}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"the server stopped at start-up; see {self.log_path}")
            try:
                if get(port, "/.well-known/openid-configuration")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        die(f"the server did not answer within 60 s; see {self.log_path}")

    def worker_pid(self) -> int:
        """granian's worker process (the one running Python requests)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        pids = [int(p) for p in children.split()]
        return pids[0] if pids else self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return request(port, "GET", path, headers)


FORM = "application/x-www-form-urlencoded"


def sample(endpoint: str, port: int, data: Data) -> str:
    """One request checked by hand: status 200 and the expected body. Returns a note."""
    if endpoint == "discovery":
        status, headers, body = get(port, "/.well-known/openid-configuration")
        ok = status == 200 and "issuer" in json.loads(body)
    elif endpoint == "jwks":
        status, headers, body = get(port, "/jwks.json")
        ok = status == 200 and len(json.loads(body)["keys"]) >= 2
    elif endpoint == "client_credentials":
        status, headers, body = request(
            port,
            "POST",
            "/token",
            {"Authorization": data.basic_for(endpoint), "Content-Type": FORM},
            "grant_type=client_credentials",
        )
        ok = status == 200 and json.loads(body).get("token_type") == "Bearer"
    elif endpoint in REFRESH:
        token = data.pools[endpoint].take()
        status, headers, body = request(
            port,
            "POST",
            "/token",
            {"Authorization": data.basic_for(endpoint), "Content-Type": FORM},
            f"grant_type=refresh_token&refresh_token={token}",
        )
        answer = json.loads(body)
        alg = json.loads(
            base64.urlsafe_b64decode(answer.get("id_token", "e30").split(".")[0] + "==")
        ).get("alg")
        ok = (
            status == 200
            and answer.get("refresh_token") not in (None, token)
            and alg == ("ES256" if endpoint == "refresh_token_es256" else "RS256")
        )
    else:
        status, headers, body = get(
            port, "/userinfo", {"Authorization": f"Bearer {data.access_token(endpoint)}"}
        )
        ok = status == 200 and "sub" in json.loads(body)
    if not ok:
        die(f"{endpoint}: sample answer {status}: {body[:300]!r}")
    shown = ("content-type", "cache-control", "x-content-type-options")
    return "; ".join(f"{k}: {headers.get(k)}" for k in shown)


# --- wrk --------------------------------------------------------------------------------------


@dataclass
class Result:
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int  # wrk's own count (status >= 400)
    non200: int  # counted by the Lua script: any status but 200
    socket_errors: str
    sent: int
    command: str
    raw: str = field(repr=False, default="")

    @property
    def valid(self) -> bool:
        return self.non2xx == 0 and self.non200 == 0 and not self.socket_errors

    @property
    def bad(self) -> int:
        return max(self.non2xx, self.non200)


def wrk_command(endpoint: str, port: int, data: Data, duration: int, connections: int) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    url, script, extra = {
        "discovery": (f"{base}/.well-known/openid-configuration", "get.lua", []),
        "jwks": (f"{base}/jwks.json", "get.lua", []),
        "client_credentials": (
            f"{base}/token",
            "client_credentials.lua",
            [data.basic_for(endpoint)],
        ),
        "refresh_token": (f"{base}/token", "refresh_token.lua", []),
        "refresh_token_es256": (f"{base}/token", "refresh_token.lua", []),
        "userinfo": (f"{base}/userinfo", "userinfo.lua", [str(data.access_files["userinfo"])]),
        "userinfo_cold": (
            f"{base}/userinfo",
            "userinfo.lua",
            [str(data.access_files["userinfo_cold"])],
        ),
    }[endpoint]
    if endpoint in REFRESH:
        extra = [data.basic_for(endpoint)]
    if endpoint in data.pools:
        pool = data.pools[endpoint]
        extra += [str(pool.path), str(pool.next)]
    return [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(BENCH / script),
        url,
        "--",
        *extra,
    ]


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(endpoint: str, port: int, data: Data, duration: int, connections: int) -> Result:
    pool = data.pools.get(endpoint)
    if pool is not None and pool.next > pool.size:
        die(f"the token pool of {endpoint} is used up; rerun with a larger --pool")
    cmd = wrk_command(endpoint, port, data, duration, connections)
    done = subprocess.run(cmd, text=True, capture_output=True, timeout=duration + 60)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        die(f"wrk failed on {endpoint}: {done.stderr.strip() or out.strip()}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    dist = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    counted = re.search(r"bench: non200=(\d+) sent=(\d+)", out)
    if counted is None:
        die(f"the wrk script of {endpoint} printed no count:\n{out}")
    sent = int(counted.group(2))
    if pool is not None:
        pool.next += sent
    if cmd[-1] == "--":
        cmd = cmd[:-1]
    shown = " ".join(c if " " not in c and not c.startswith("Basic ") else f"'{c}'" for c in cmd)
    for basic in data.basic.values():
        shown = shown.replace(basic.split()[-1], "<id:secret>")
    shown = shown.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT")
    return Result(
        endpoint=endpoint,
        rps=rps,
        p50_ms=to_ms(dist["50"]),
        p99_ms=to_ms(dist["99"]),
        requests=requests,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        non200=int(counted.group(1)),
        socket_errors=errors.group(1) if errors else "",
        sent=sent,
        command=shown,
        raw=out,
    )


def profile(
    endpoint: str, server: Server, data: Data, tag: str, duration: int, connections: int
) -> list[Path]:
    """py-spy (on CPU 1, beside wrk) samples the server while wrk loads it: only the thread
    holding the GIL (--gil), i.e. where the one server core spends its Python time."""
    spy = BIN / "py-spy"
    if not spy.exists():
        die("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    pid = str(server.worker_pid())
    seconds = str(max(2, duration - 2))
    outputs = [OUT / f"profile-{tag}-{endpoint}.svg", OUT / f"profile-{tag}-{endpoint}.txt"]
    spies = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                str(spy),
                "record",
                "--pid",
                pid,
                "--duration",
                seconds,
                "--rate",
                "200",
                "--nonblocking",
                "--gil",
                "--format",
                fmt,
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, path in zip(("flamegraph", "raw"), outputs, strict=True)
    ]
    time.sleep(0.5)
    run_wrk(endpoint, server.port, data, duration, connections)
    for proc in spies:
        proc.wait(timeout=60)
    return outputs


# --- report -------------------------------------------------------------------------------------


def fmt_table(results: dict[str, Result], db: str) -> str:
    lines = [
        "| endpoint | req/s | p50 | p99 | non-2xx | target | met |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for endpoint in ENDPOINTS:
        r = results.get(endpoint)
        if r is None:
            continue
        target = TARGETS[endpoint]
        note = " (PostgreSQL)" if endpoint in REFRESH else ""
        met = "yes" if r.valid and r.rps >= target else "no"
        if endpoint in REFRESH and not db.startswith("postgresql"):
            met = f"({met})"
        rps = f"{r.rps:,.0f}" if r.valid else f"~~{r.rps:,.0f}~~ (invalid)"
        lines.append(
            f"| {LABELS[endpoint]} | {rps} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms | "
            f"{r.bad}{' + socket errors: ' + r.socket_errors if r.socket_errors else ''} | "
            f"{target:,}{note} | {met} |"
        )
    return "\n".join(lines)


def score(results: dict[str, Result]) -> float:
    """Geometric mean of req/s relative to target; an invalid figure counts as zero."""
    ratios = [(r.rps if r.valid else 0.0) / TARGETS[e] for e, r in results.items()]
    if not ratios or min(ratios) <= 0:
        return 0.0
    return math.exp(sum(math.log(x) for x in ratios) / len(ratios))


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    wrk_version = subprocess.run(["wrk", "-v"], text=True, capture_output=True)
    wrk_line = (wrk_version.stdout or wrk_version.stderr).splitlines()[0:1]
    import sqlite3

    import granian

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "granian": granian.__version__,
        "wrk": wrk_line[0].split(" [")[0] if wrk_line else "wrk",
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
    }


def doc_section(
    db: str,
    sweep: dict[int, dict[str, Result]],
    best: int,
    info: dict[str, str],
    command: str,
    server_cmd: str,
    samples: dict[str, str],
) -> str:
    key = "postgresql" if db.startswith("postgresql") else "sqlite"
    title = "PostgreSQL" if key == "postgresql" else "SQLite"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = sweep[best]
    out = [
        f"<!-- bench:{key}:start (written by bench/run.py; edits here are overwritten) -->",
        f"## {title}",
        "",
        f"Measured {now} with `--blocking-threads {best}` (the best of the values tried, "
        "see below).",
        "",
        fmt_table(results, db),
        "",
        "- Database: "
        + (
            f"SQLite {info['sqlite']} (WAL), a new file bench/out/idp-bench.sqlite3"
            if key == "sqlite"
            else f"{db.replace('postgresql', 'PostgreSQL')} on 127.0.0.1, the database dropped and "
            "recreated; its server is not pinned and shares both cores"
        ),
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Linux {info['kernel']}; Python {info['python']}, granian {info['granian']}, "
        f"{info['wrk']}",
        f"- Command: `{command}`",
        f"- Server: `{server_cmd}` (IDP_MODE=production, random secret and "
        "key-encryption keys, issuer http://127.0.0.1:PORT)",
        f"- Load: `{results[ENDPOINTS[0]].command.replace(str(ROOT) + '/', '')}` and the "
        "same with each endpoint's script; 3 s warm-up before each measured run.",
        "- Checked answers (one request per endpoint before the load): all 200; headers "
        f"discovery `{samples.get('discovery', '')}`, JWKS `{samples.get('jwks', '')}`.",
        "",
        "Blocking threads tried (req/s; a struck figure had answers other than 200):",
        "",
        "| --blocking-threads | " + " | ".join(ENDPOINTS) + " | score |",
        "|---:|" + "---:|" * (len(ENDPOINTS) + 1),
    ]
    for threads, res in sweep.items():
        cells = [
            (f"{res[e].rps:,.0f}" if res[e].valid else f"~~{res[e].rps:,.0f}~~") if e in res else ""
            for e in ENDPOINTS
        ]
        mark = " **(chosen)**" if threads == best else ""
        out.append(f"| {threads}{mark} | " + " | ".join(cells) + f" | {score(res):.2f} |")
    out += [
        "",
        "score: geometric mean of req/s divided by the target. On this 2-core machine the "
        "figures move by 10-30 % from run to run (the database server and anything else "
        "running share the cores), so small differences between values are noise.",
        f"<!-- bench:{key}:end -->",
    ]
    return "\n".join(out)


DOC_HEAD = """# Performance

Requests per second of the protocol endpoints with the whole IdP on **one server core**:
`make bench` (bench/run.py) starts it in production mode under granian (1 worker, pinned
to CPU 0 with `taskset -c 0`) and loads it with wrk pinned to CPU 1
(`taskset -c 1 wrk -t1 -c32 -d10s --latency`), on 127.0.0.1. Every refresh-token
request presents a refresh token never used before (a pool seeded by bench/seed.py), so
each one is a real rotation with durable writes; refresh is measured for a client with
RS256 ID tokens (the default) and for one with ES256 ID tokens. userinfo is measured with
1,000 tokens whose verified signatures the key ring remembers, and cold: 20,480 tokens in
a cycle, five times what it remembers, so every signature is verified, as on a token's
first call. A figure counts only when every answer was 200
(non-2xx = 0).

Run it: `make bench` (SQLite), or
`IDP_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench make bench`
(that database is dropped and recreated). Options: `.venv/bin/python bench/run.py --help`.
"""


def write_doc(section: str, key: str) -> None:
    text = DOC.read_text() if DOC.exists() else DOC_HEAD
    pattern = re.compile(rf"<!-- bench:{key}:start.*?<!-- bench:{key}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        # SQLite before PostgreSQL; hand-written sections after both.
        other = re.search(r"<!-- bench:postgresql:start", text)
        if key == "sqlite" and other:
            text = text[: other.start()] + section + "\n\n" + text[other.start() :]
        else:
            anchor = re.search(r"<!-- bench:sqlite:end -->\n", text)
            if anchor:
                text = text[: anchor.end()] + "\n" + section + "\n" + text[anchor.end() :]
            else:
                text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the IdP's protocol endpoints.")
    parser.add_argument(
        "--blocking-threads",
        default="1,2,4",
        help="granian --blocking-threads values to try (comma-separated)",
    )
    parser.add_argument(
        "--endpoints", default=",".join(ENDPOINTS), help=f"subset of: {','.join(ENDPOINTS)}"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--pool",
        type=int,
        default=100_000,
        help="refresh tokens seeded per client (each request uses a new one)",
    )
    parser.add_argument(
        "--profile",
        choices=("none", "missed", "all"),
        default="none",
        help="py-spy record the server under load: for endpoints that miss "
        "their target, or all (bench/out/profile-*.svg and *.txt)",
    )
    parser.add_argument(
        "--server-args", default="", help="extra granian options, e.g. '--http 1' (space-separated)"
    )
    parser.add_argument(
        "--app",
        default="wsgi:app",
        help="WSGI target granian serves (experiments; PYTHONPATH is passed on)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/performance.md")
    args = parser.parse_args()
    thread_values = [int(v) for v in args.blocking_threads.split(",") if v.strip()]
    endpoints = [e for e in args.endpoints.split(",") if e]
    for e in endpoints:
        if e not in TARGETS:
            die(f"unknown endpoint {e!r}")
    if (os.cpu_count() or 1) < 2:
        die("needs at least 2 CPUs (server on CPU 0, wrk on CPU 1)")

    ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    url, db = prepare_database(os.environ.get("IDP_DATABASE_URL"))
    key = "postgresql" if db.startswith("postgresql") else "sqlite"
    port = free_port()
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "IDP_MODE": "production",
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_DATABASE_URL": url,
        "IDP_SECRET_KEY": secrets.token_urlsafe(48),
        "IDP_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "IDP_INSTANCE_PATH": str(OUT / "instance"),
        "IDP_LOG_LEVEL": "WARNING",
        # Production mode requires an SMTP server; no benchmarked request sends mail.
        "IDP_SMTP_HOST": "127.0.0.1",
    }
    env.pop("IDP_CONFIG", None)
    log(f"database: {db}; seeding {args.pool:,} refresh tokens per client")
    data = seed(env, args.pool)
    info = machine()

    sweep: dict[int, dict[str, Result]] = {}
    samples: dict[str, str] = {}
    server_cmds: dict[int, str] = {}
    for threads in thread_values:
        tag = f"{key}-t{threads}"
        server = Server(env, port, threads, tag, args.server_args.split(), args.app)
        server_cmds[threads] = (
            " ".join(server.command)
            .replace(str(BIN) + "/", ".venv/bin/")
            .replace(f"--port {port}", "--port PORT")
        )
        try:
            results: dict[str, Result] = {}
            for endpoint in endpoints:
                samples[endpoint] = sample(endpoint, port, data)
                if args.warmup:
                    run_wrk(endpoint, port, data, args.warmup, args.connections)
                r = run_wrk(endpoint, port, data, args.duration, args.connections)
                results[endpoint] = r
                log(
                    f"  threads={threads} {endpoint:18} {r.rps:10,.0f} req/s  "
                    f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  non-2xx {r.bad}"
                    f"{'  socket errors: ' + r.socket_errors if r.socket_errors else ''}"
                )
                if args.profile == "all" or (
                    args.profile == "missed" and (not r.valid or r.rps < TARGETS[endpoint])
                ):
                    paths = profile(endpoint, server, data, tag, args.duration, args.connections)
                    log(f"    profile: {', '.join(str(p.relative_to(ROOT)) for p in paths)}")
            sweep[threads] = results
        finally:
            server.stop()
        log(f"\n{db}, --blocking-threads {threads}:\n{fmt_table(results, db)}\n")

    best = max(sweep, key=lambda t: score(sweep[t]))
    log(f"best --blocking-threads: {best} (score {score(sweep[best]):.2f})")
    log(fmt_table(sweep[best], db))
    for endpoint, pool in data.pools.items():
        log(f"{endpoint} tokens used: {pool.next - 1:,} of {pool.size:,}")
    if not args.no_doc:
        shown_env = (
            "IDP_DATABASE_URL=" + os.environ["IDP_DATABASE_URL"] + " "
            if key == "postgresql"
            else ""
        )
        extra = " ".join(sys.argv[1:])
        command = (
            f"{shown_env}make bench"
            if not extra
            else f"{shown_env}.venv/bin/python bench/run.py {extra}"
        )
        write_doc(doc_section(db, sweep, best, info, command, server_cmds[best], samples), key)
        log(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
