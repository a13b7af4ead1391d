"""The Dockerfile, checked without a Docker daemon (there is none on the development
machine, nor a registry): what it copies exists and is in the build context, the image has
everything the IdP reads beside its package, the catalogues are compiled as the Makefile
does, nothing secret is set, granian serves wsgi:app as a non-root PID 1, migrations are
not run at start. `test_the_image_install_steps_work_in_a_fresh_venv` runs the image's own
install step in a fresh virtualenv on a copy of the build context and serves from it; the
real `docker build` runs only where a daemon answers (skipped otherwise, saying so)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# Settings whose value is a secret (or may carry one: a database URL with a password).
SECRET_SETTINGS = {"secret_key", "key_encryption_key", "smtp_password", "database_url"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :]
        value = json.loads(text.strip())
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped (as
    Docker does, also between continuation lines)."""
    result: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return result


def of(keyword: str) -> list[Instruction]:
    return [i for i in instructions() if i.keyword == keyword]


def env_settings() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in of("ENV"):
        for pair in shlex.split(instruction.arguments):
            name, equals, value = pair.partition("=")
            assert equals, f"ENV {pair!r}: use the NAME=value form"
            values[name] = value
    return values


def copies() -> list[tuple[list[str], str]]:
    """Each COPY's sources and destination (no --from: everything comes from the repo)."""
    result = []
    for instruction in of("COPY"):
        parts = shlex.split(instruction.arguments)
        assert not any(p.startswith("--from") for p in parts), instruction
        parts = [p for p in parts if not p.startswith("--")]
        result.append((parts[:-1], parts[-1]))
    return result


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore line (Go's filepath.Match plus `**`) as a regex over a path
    relative to the context; it also matches everything under a matched folder."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out + "(?:/.*)?")


def ignored(relative: str) -> bool:
    """Whether .dockerignore keeps this path out of the build context (last match wins,
    `!` re-includes)."""
    verdict = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        if _pattern_regex(pattern).fullmatch(relative):
            verdict = not negate
    return verdict


def tracked_files(source: str) -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return listing.stdout.split()


# --- what the image holds ----------------------------------------------------------------------


def test_the_base_image_is_the_projects_python() -> None:
    (base,) = of("FROM")
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    required = cfg["options"]["python_requires"].removeprefix(">=").strip()
    assert required == cfg["mypy"]["python_version"] == "3.11"
    assert base.arguments == f"python:{required}-slim"


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    assert copies()
    for sources, _destination in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
            files = tracked_files(source)
            assert files, f"COPY {source}: nothing tracked by git"
            left_out = [f for f in files if ignored(f)]
            assert not left_out, f"COPY {source}: .dockerignore drops {left_out[:5]}"


def test_what_must_stay_out_of_the_context_does() -> None:
    for path in (".git", ".venv", "instance", "instance/idp.sqlite3", "tests/conftest.py"):
        assert ignored(path), path
    assert ignored("idp/translations/lv/LC_MESSAGES/messages.mo")  # compiled in the image
    assert not ignored("idp/translations/lv/LC_MESSAGES/messages.po")
    assert ignored("deploy/idp.env")


def test_everything_the_idp_reads_beside_its_package_is_copied() -> None:
    """idp.settings.PROJECT_ROOT is the folder above idp/; the wheel holds only the
    packages, so each folder the code reads from there must be copied to /app. A new one
    (e.g. `PROJECT_ROOT / "fonts"`) fails here until the Dockerfile copies it."""
    read_beside = set()
    for path in (ROOT / "idp").rglob("*.py"):
        read_beside |= set(re.findall(r'PROJECT_ROOT\s*/\s*"([^"]+)"', path.read_text("utf-8")))
    # The instance folder is the one place it writes: a setting, set to a volume below.
    read_beside.discard("instance")
    assert {"templates", "static", "config", "migrations"} <= read_beside
    (workdir,) = of("WORKDIR")
    copied = {
        source.rstrip("/")
        for sources, destination in copies()
        for source in sources
        if destination in ("./", f"{source.rstrip('/')}/", workdir.arguments + "/")
    }
    assert read_beside | {"idp", "wsgi.py"} <= copied, read_beside - copied
    env = env_settings()
    assert env["PYTHONPATH"] == workdir.arguments == "/app"
    assert env["IDP_INSTANCE_PATH"].startswith("/var/")


def test_the_package_metadata_and_console_scripts_are_there_when_pip_runs() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    # `long_description = file: README.md`: pip needs it to build the package.
    needed = {"setup.cfg", "pyproject.toml", cfg["metadata"]["long_description"].split(":")[1]}
    install = next(i for i in of("RUN") if "pip install" in i.arguments)
    before_install = instructions()[: instructions().index(install)]
    copied_before = {
        s.strip().rstrip("/")
        for i in before_install
        if i.keyword == "COPY"
        for s in shlex.split(i.arguments)[:-1]
    }
    assert {n.strip() for n in needed} <= copied_before
    packages = cfg["options.packages.find"]["include"].split()
    assert {p for p in packages if "." not in p} <= copied_before
    # A regular install (not -e), and the commands the image runs come with it.
    assert re.search(r"pip install \.(\s|$)", install.arguments), install.arguments
    assert "-e" not in shlex.split(install.arguments.split("&&")[0])
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert re.search(r"^\s*idp\s*=\s*idp\.cli:main", scripts, re.M)
    from idp import cli

    assert callable(cli.main)
    requires = cfg["options"]["install_requires"]
    assert re.search(r"^\s*granian\b", requires, re.M)
    assert re.search(r"^\s*psycopg\[binary\]", requires, re.M)  # the production database


def test_the_catalogues_are_compiled_as_the_makefile_compiles_them() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    made = re.search(r"^%\.mo: %\.po.*\n\t\$\(BIN\)/pybabel (.+)$", makefile, re.M)
    assert made, "the Makefile's .mo rule moved"
    install = next(i for i in of("RUN") if "pybabel" in i.arguments)
    built = re.search(r"pybabel (compile [^|;&]+)", install.arguments)
    assert built
    # Same subcommand and flags; the Makefile's $< / $@ are the loop's .po / .mo.
    expected = made.group(1).replace("$<", '"$po"').replace("$@", '"${po%.po}.mo"')
    assert built.group(1).strip() == expected.strip()
    assert "idp/translations/*/LC_MESSAGES/messages.po" in install.arguments
    assert "exit 1" in install.arguments  # a broken catalogue stops the build


def test_no_secret_is_baked_into_the_image() -> None:
    names = set(env_settings()) | {shlex.split(i.arguments)[0].split("=")[0] for i in of("ARG")}
    for setting in SECRET_SETTINGS:
        assert f"IDP_{setting.upper()}" not in names
    assert not any(re.search("SECRET|PASSWORD|TOKEN", n) for n in names), names
    # IDP_CONFIG would point at a file baked in; it is mounted at run time instead.
    assert "IDP_CONFIG" not in names
    assert env_settings()["IDP_MODE"] == "production"  # the demo secret key is refused


def test_granian_serves_wsgi_app_as_a_non_root_pid_1_and_no_migration_runs_at_start() -> None:
    (user,) = of("USER")
    assert user.arguments.split(":")[0] not in ("root", "0")
    ordered = instructions()
    assert ordered.index(user) < ordered.index(of("CMD")[0])
    assert not of("ENTRYPOINT")
    (cmd,) = of("CMD")
    argv = cmd.exec_form()  # exec form: granian itself gets docker stop's SIGTERM
    (expose,) = of("EXPOSE")
    assert expose.arguments == "5000"
    assert argv[0] == "granian" and argv[-1] == "wsgi:app"
    assert argv[argv.index("--interface") + 1] == "wsgi"
    assert argv[argv.index("--port") + 1] == expose.arguments
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - inside the container
    # The workers come from the environment (granian reads GRANIAN_WORKERS), not the CMD.
    assert "--workers" not in argv and int(env_settings()["GRANIAN_WORKERS"]) >= 1
    assert "upgrade" not in " ".join(argv)


def test_the_healthcheck_asks_healthz_on_the_exposed_port() -> None:
    (check,) = of("HEALTHCHECK")
    argv = check.exec_form()
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:5000/healthz" in argv[2]
    assert re.search(r"--timeout=\d+s", check.arguments)
    compile(argv[2], "HEALTHCHECK", "exec")  # the probe is valid Python


# --- the install steps, really run ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy_context(target: Path) -> None:
    """The build context as the Dockerfile's COPY lines lay it out under /app."""
    for sources, _destination in copies():
        for source in sources:
            for relative in tracked_files(source):
                if not ignored(relative):
                    (target / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / relative, target / relative)


@pytest.fixture(scope="module")
def image_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A copy of the build context at `app`, installed by the Dockerfile's own install
    step (its RUN line, verbatim, by sh) into a fresh virtualenv `venv`."""
    root = tmp_path_factory.mktemp("image")
    app, venv = root / "app", root / "venv"
    _copy_context(app)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    install = next(i for i in of("RUN") if "pip install" in i.arguments)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", **env_settings()}
    env.pop("PYTHONPATH")  # as in the image, the install step runs before it is set
    env.pop("PIP_NO_CACHE_DIR")  # here the machine's pip cache may serve the downloads
    result = subprocess.run(
        ["sh", "-c", install.arguments],
        cwd=app,
        env={k: v for k, v in env.items() if k != "VIRTUAL_ENV"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if result.returncode != 0 and re.search(
        r"Failed to establish a new connection|Temporary failure in name resolution",
        result.stdout + result.stderr,
    ):
        pytest.skip("the package index is not reachable from here")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield app, venv


def test_the_image_install_steps_work_in_a_fresh_venv(
    image_like: tuple[Path, Path], tmp_path: Path
) -> None:
    """What the image runs, run here: the compiled catalogues, `idp --help` and
    `idp db upgrade` (the separate migration step), then granian from the CMD on a
    free port, answering discovery. Elsewhere than /app, as the image's ENV says."""
    app, venv = image_like
    for po in (app / "idp" / "translations").glob("*/LC_MESSAGES/messages.po"):
        assert po.with_suffix(".mo").stat().st_size > 0
    # The installed package is no editable link to the copy: it is in site-packages.
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import idp; print(idp.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in installed.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "VIRTUAL_ENV"))}
    env.update(env_settings())
    env.update(
        {
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "PYTHONPATH": str(app),
            "IDP_EFFECTIVE_CONFIG": "",
            # Production needs https, SMTP and real keys; the image's defaults otherwise.
            "IDP_MODE": "development",
            "IDP_INSTANCE_PATH": str(tmp_path / "instance"),
            "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
            "GRANIAN_WORKERS": "1",
        }
    )

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    helped = run("idp", "--help")
    assert helped.returncode == 0 and "db" in helped.stdout, helped.stderr[-2000:]
    upgraded = run("idp", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]

    (cmd,) = of("CMD")
    argv = cmd.exec_form()
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    log = (tmp_path / "granian.log").open("wb")
    # granian imports `wsgi` from its working directory, /app in the image.
    server = subprocess.Popen(
        argv, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2
                )
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        log.close()
        output = (tmp_path / "granian.log").read_text(errors="replace")
        assert answer is not None and answer.status_code == 200, output[-3000:]
        assert answer.json()["issuer"] == env["IDP_ISSUER"]
        assert "Traceback" not in output, output[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=15)


def _docker_answers() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0:
        return "no Docker daemon answers `docker info`: " + info.stderr.strip()[:200]
    return None


def test_the_image_builds() -> None:
    reason = _docker_answers()
    if reason is not None:
        pytest.skip(reason)
    build = subprocess.run(
        ["docker", "build", "--tag", "gas-portal-idp:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    listed = subprocess.run(
        # Development mode: production refuses to start without real settings.
        [
            "docker",
            "run",
            "--rm",
            "-e",
            "IDP_MODE=development",
            "gas-portal-idp:test",
            "idp",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0 and "db" in listed.stdout, listed.stderr[-2000:]
