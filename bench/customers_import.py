"""Time `idp customers import` with 100,000 valid customers (the issue: "well under a minute").

    .venv/bin/python bench/customers_import.py [--rows 100000]
    IDP_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench \\
        .venv/bin/python bench/customers_import.py

Without IDP_DATABASE_URL it uses a new SQLite file in a temporary folder. With it, use a
throw-away database: the customers stay there (their numbers carry a random prefix, so runs
never collide). Writes a CSV of persons and companies (Latvian names, old- and new-format
personal codes, contracts), runs `idp db upgrade`, then times three runs of the real
command in a child process, start-up included:

1. the first import (every row added),
2. the same file again (every row unchanged),
3. the file with every tenth customer changed (e-mail and one more contract: updated).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stdnum.lv import pvn

ROOT = Path(__file__).resolve().parent.parent
# The console script's entry point, run from this checkout (same as `.venv/bin/idp`).
IDP = [sys.executable, "-c", "from idp.cli import main; main()"]
HEADER = [
    "customer_number",
    "kind",
    "given_name",
    "family_name",
    "company_name",
    "personal_code",
    "registration_number",
    "contract_numbers",
    "email",
    "phone",
]
GIVEN = [
    "Jānis",
    "Anna",
    "Pēteris",
    "Līga",
    "Andris",
    "Ieva",
    "Kārlis",
    "Zane",
    "Mārtiņš",
    "Dace",
    "Edgars",
    "Inese",
    "Ģirts",
    "Ērika",
    "Oļegs",
    "Ņina",
]
FAMILY = [
    "Bērziņš",
    "Kalniņa",
    "Ozols",
    "Liepiņa",
    "Krūmiņš",
    "Zariņa",
    "Šteins",
    "Žagars",
    "Ābele",
    "Čakste",
    "Ķīsis",
    "Ļaviņa",
]


def personal_code(rng: random.Random) -> str:
    """A valid code: the new format (32…) or the old one with a birth date and century."""
    if rng.random() < 0.5:
        body = "32" + "".join(rng.choice("0123456789") for _ in range(8))
        code = body + pvn.calc_check_digit_pers(body)
    else:
        century = rng.choice("12")  # 1: born 1900-1999, 2: 2000-2016 (not in the future)
        year = rng.randint(0, 99 if century == "1" else 16)
        body = (
            f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{year:02d}"
            f"{century}{rng.randint(0, 999):03d}"
        )
        code = body + pvn.calc_check_digit_pers(body)
    return f"{code[:6]}-{code[6:]}" if rng.random() < 0.5 else code


def registration_number(rng: random.Random) -> str:
    """11 digits starting with 4 whose weighted sum is 3 mod 11 (stdnum.lv.pvn)."""
    while True:
        body = "4" + "".join(rng.choice("0123456789") for _ in range(9))
        last = (3 - pvn.checksum(body + "0")) % 11
        if last < 10:
            return body + str(last)


def write_rows(path: Path, rows: int, prefix: str, changed_every: int = 0) -> None:
    rng = random.Random(42)  # the same customers in every file of a run
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(HEADER)
        for i in range(rows):
            number = f"{prefix}{i:07d}"
            contracts = [f"{prefix}K{i:07d}-{n}" for n in range(rng.randint(1, 2))]
            changed = bool(changed_every) and i % changed_every == 0
            if changed:
                contracts.append(f"{prefix}K{i:07d}-9")
            phone = f"+371 2{rng.randint(0, 9999999):07d}" if rng.random() < 0.7 else ""
            email = f"client{i}@{'new.' if changed else ''}example.lv"
            if rng.random() < 0.9:
                writer.writerow(
                    [
                        number,
                        "person",
                        rng.choice(GIVEN),
                        rng.choice(FAMILY),
                        "",
                        personal_code(rng),
                        "",
                        ";".join(contracts),
                        email,
                        phone,
                    ]
                )
            else:
                writer.writerow(
                    [
                        number,
                        "company",
                        "",
                        "",
                        f"SIA Gāzes Līnija {i}",
                        "",
                        registration_number(rng),
                        ";".join(contracts),
                        email,
                        phone,
                    ]
                )


def run(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [*IDP, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"idp {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="customers-bench-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ)
        env.setdefault("IDP_DATABASE_URL", f"sqlite:///{folder / 'bench.sqlite3'}")
        backend = env["IDP_DATABASE_URL"].split(":", 1)[0]
        prefix = secrets.token_hex(3).upper()
        first, changed = folder / "customers.csv", folder / "customers-changed.csv"
        write_rows(first, args.rows, prefix)
        write_rows(changed, args.rows, prefix, changed_every=10)
        size = first.stat().st_size / 1e6
        print(f"{args.rows} rows, {size:.1f} MB, database {backend}")
        run(env, "db", "upgrade")
        startup, _ = run(env, "customers", "list", "--limit", "1")
        print(f"  start-up of the idp command (customers list --limit 1): {startup:5.1f} s")
        for label, path in (
            ("first import", first),
            ("same file again", first),
            ("every 10th changed", changed),
        ):
            elapsed, summary = run(env, "customers", "import", str(path))
            print(f"  {label:<20} {elapsed:5.1f} s   {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
