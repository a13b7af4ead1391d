"""Settings: config/default.toml < the IDP_CONFIG file < make run's instance/effective.toml <
IDP_* environment, validated at start-up with one line naming the setting."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idp.settings import DEMO_SECRET_KEY, PROJECT_ROOT, SettingsError, load_settings

STRONG_SECRET = "s" * 40
FERNET_KEY = base64.urlsafe_b64encode(b"f" * 32).decode()


def config_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "idp.toml"
    path.write_text(text)
    return {"IDP_CONFIG": str(path)}


def settings_error(
    overrides: dict[str, object] | None = None, environ: dict[str, str] | None = None
) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides, environ={} if environ is None else environ)
    message = str(caught.value)
    assert "\n" not in message, "the message must be one line"
    return message


def production(**overrides: object) -> dict[str, object]:
    return {
        "mode": "production",
        "issuer": "https://idp.example.lv",
        "secret_key": STRONG_SECRET,
        "key_encryption_key": FERNET_KEY,
        "smtp_host": "smtp.example.lv",
        **overrides,
    }


# --- layers ---------------------------------------------------------------------------------


def test_defaults_load_from_default_toml_alone() -> None:
    settings = load_settings(environ={})
    assert settings.mode == "demo"
    assert settings.issuer == "http://127.0.0.1:5000"
    assert settings.argon2_memory_cost == 19456
    assert settings.locales == ["lv", "ru", "en"]
    assert settings.default_locale == "lv"


def test_the_support_contact_is_per_language_with_the_default_standing_in() -> None:
    settings = load_settings(environ={})
    assert settings.support_contact_in("ru").startswith("телефон 8000 0000")
    assert settings.support_contact_in("en").startswith("phone 8000 0000")
    one = load_settings(environ={"IDP_SUPPORT_CONTACT": "+371 6700 0000"})
    assert one.support_contact_in("ru") == one.support_contact_in("lv") == "+371 6700 0000"
    table = load_settings(environ={"IDP_SUPPORT_CONTACT": '{"lv": "tālr. 1", "en": "phone 1"}'})
    assert (table.support_contact_in("en"), table.support_contact_in("ru")) == (
        "phone 1",
        "tālr. 1",
    )
    for bad in ('{"en": "phone 1"}', '{"lv": ""}', "{not json"):
        with pytest.raises(SettingsError, match="support_contact"):
            load_settings(environ={"IDP_SUPPORT_CONTACT": bad})


def test_the_idp_config_file_overrides_default_toml(tmp_path: Path) -> None:
    environ = config_file(tmp_path, 'issuer = "https://idp.example.lv"\njwks_max_age = 60\n')
    settings = load_settings(environ=environ)
    assert settings.issuer == "https://idp.example.lv"
    assert settings.jwks_max_age == 60
    assert settings.access_token_lifetime == 300  # untouched: still the default


def test_environment_overrides_both_the_file_and_the_defaults(tmp_path: Path) -> None:
    environ = config_file(tmp_path, 'issuer = "https://file.example.lv"\njwks_max_age = 60\n')
    environ |= {
        "IDP_ISSUER": "https://env.example.lv",
        "IDP_JWKS_MAX_AGE": "120",
        "IDP_LOCALES": "en,lv",
        "IDP_ID_TOKEN_LIFETIME": "900",
    }
    settings = load_settings(environ=environ)
    assert settings.issuer == "https://env.example.lv"
    assert settings.jwks_max_age == 120
    assert settings.locales == ["en", "lv"]
    assert settings.id_token_lifetime == 900


def test_an_unknown_key_in_the_config_file_is_refused_by_name(tmp_path: Path) -> None:
    message = settings_error(environ=config_file(tmp_path, 'isuer = "https://typo.example.lv"\n'))
    assert "isuer" in message


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    message = settings_error(environ={"IDP_CONFIG": str(tmp_path / "nowhere.toml")})
    assert "nowhere.toml" in message


def test_a_config_file_that_is_not_toml_is_refused_in_one_line(tmp_path: Path) -> None:
    message = settings_error(environ=config_file(tmp_path, "issuer = \n[[broken\n"))
    assert "not valid TOML" in message


# --- invalid values -----------------------------------------------------------------------------


def test_a_non_integer_in_the_environment_names_the_setting() -> None:
    message = settings_error(environ={"IDP_ACCESS_TOKEN_LIFETIME": "five minutes"})
    assert "access_token_lifetime" in message
    assert "IDP_ACCESS_TOKEN_LIFETIME" in message


def test_a_non_integer_in_the_config_file_names_the_setting(tmp_path: Path) -> None:
    message = settings_error(environ=config_file(tmp_path, 'jwks_max_age = "300"\n'))
    assert "jwks_max_age" in message


def test_a_negative_integer_is_refused() -> None:
    assert "login_delay_base" in settings_error({"login_delay_base": -1})


@pytest.mark.parametrize(
    "name", ["login_address_free_accounts", "login_delay_base", "login_failure_window"]
)
def test_a_login_throttling_setting_of_zero_is_refused(name: str) -> None:
    # Zero would switch throttling off, or let one failure slow down a whole shared address.
    assert f"'{name}'" in settings_error({name: 0})


def test_the_login_delay_cap_must_not_be_below_its_base() -> None:
    assert "'login_delay_max'" in settings_error({"login_delay_base": 60, "login_delay_max": 30})


def test_an_unknown_mode_names_the_setting_and_the_allowed_values() -> None:
    message = settings_error(environ={"IDP_MODE": "staging"})
    assert "'mode'" in message
    assert "production" in message
    assert "staging" in message


@pytest.mark.parametrize(
    "issuer",
    [
        "idp.example.lv",  # no scheme
        "ftp://idp.example.lv",  # not http(s)
        "https://",  # no host
        "https://idp.example.lv/?a=b",  # a query
        "https://idp example.lv",  # a space
        "http://[::1",  # broken IPv6 literal: urlsplit raises
        "https://idp.example.lv:99999",  # port out of range: .port raises
    ],
)
def test_an_issuer_that_is_not_an_absolute_http_url_is_refused(issuer: str) -> None:
    assert "'issuer'" in settings_error({"issuer": issuer})


def test_an_issuer_with_a_trailing_slash_is_refused() -> None:
    # `iss` is compared as a string by relying apps (OIDC Discovery §4.3).
    assert "'issuer'" in settings_error({"issuer": "https://idp.example.lv/"})


def test_key_activation_must_wait_at_least_one_jwks_cache_period() -> None:
    message = settings_error({"key_activation_delay": 60, "jwks_max_age": 300})
    assert "key_activation_delay" in message
    # 0 means "activate at once" (tests, first start) and is allowed.
    assert load_settings({"key_activation_delay": 0, "jwks_max_age": 300}, environ={})


def test_a_key_encryption_key_that_is_not_a_fernet_key_is_refused() -> None:
    assert "key_encryption_key" in settings_error({"key_encryption_key": "too-short"})


def test_an_unknown_override_is_refused() -> None:
    assert "no_such_setting" in settings_error({"no_such_setting": 1})


# --- production mode ----------------------------------------------------------------------------


def test_production_accepts_a_strong_secret_a_key_and_an_https_issuer() -> None:
    settings = load_settings(production(), environ={})
    assert settings.is_production


def test_production_accepts_plain_http_on_loopback() -> None:
    settings = load_settings(production(issuer="http://127.0.0.1:5000"), environ={})
    assert settings.issuer_is_loopback_http


def test_production_refuses_the_demo_secret_key() -> None:
    assert "secret_key" in settings_error(production(secret_key=DEMO_SECRET_KEY))


def test_production_refuses_a_short_secret_key() -> None:
    assert "secret_key" in settings_error(production(secret_key="short"))


def test_production_refuses_a_missing_key_encryption_key() -> None:
    assert "key_encryption_key" in settings_error(production(key_encryption_key=""))


def test_production_refuses_plain_http_off_loopback() -> None:
    message = settings_error(production(issuer="http://idp.example.lv"))
    assert "'issuer'" in message
    assert "https" in message


def test_development_mode_allows_what_production_refuses() -> None:
    settings = load_settings({"mode": "development", "issuer": "http://idp.example.lv"}, environ={})
    assert settings.secret_key == DEMO_SECRET_KEY
    assert settings.effective_key_encryption_key  # the fixed demo key stands in


# --- start-up with a bad setting --------------------------------------------------------------


def _clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    return env | {"IDP_EFFECTIVE_CONFIG": ""} | extra


def test_the_idp_command_exits_with_one_line_on_a_bad_setting() -> None:
    idp = Path(sys.executable).parent / "idp"
    done = subprocess.run(
        [str(idp), "keys", "list"],
        capture_output=True,
        text=True,
        env=_clean_environ(IDP_MODE="production"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("idp: setting")
    assert "Traceback" not in done.stderr


def test_the_idp_command_exits_with_one_line_on_an_unparsable_issuer() -> None:
    idp = Path(sys.executable).parent / "idp"
    done = subprocess.run(
        [str(idp), "keys", "list"],
        capture_output=True,
        text=True,
        env=_clean_environ(IDP_ISSUER="http://[::1"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "idp: setting 'issuer' (IDP_ISSUER) must be an absolute http(s) URL"
    ]


def test_the_wsgi_module_exits_with_one_line_on_a_bad_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=_clean_environ(IDP_MODE="production"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("idp: setting 'secret_key'")


def test_the_wsgi_module_refuses_keys_it_cannot_decrypt(tmp_path) -> None:
    """A wrong key-encryption key stops start-up with one line (not 500s at run time)."""
    from cryptography.fernet import Fernet

    database = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    first = _clean_environ(
        IDP_DATABASE_URL=database, IDP_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode()
    )
    idp = Path(sys.executable).parent / "idp"
    subprocess.run(
        [str(idp), "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=first,
        capture_output=True,
        timeout=60,
        check=True,
    )
    other = dict(first, IDP_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode())
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=other,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot be decrypted" in lines[0]


def test_the_wsgi_module_says_when_the_database_is_not_migrated(tmp_path) -> None:
    env = _clean_environ(IDP_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    done = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "run `idp db upgrade`" in lines[0]


def test_production_refuses_to_run_without_an_smtp_server() -> None:
    assert "smtp_host" in settings_error(production(smtp_host=""))


# --- the effective settings of `make run` (instance/effective.toml) ------------------------


def effective_file(
    tmp_path: Path, issuer: str = "http://127.0.0.1:5103", idp_config: str = ""
) -> Path:
    """The file as `make run` writes it (idp.settings.write_effective)."""
    from idp.settings import write_effective

    path = tmp_path / "instance" / "effective.toml"
    started = load_settings({"issuer": issuer, "database_url": "sqlite:///run.sqlite3"}, environ={})
    write_effective(started, path, idp_config, "make run")
    return path


def test_the_effective_file_sits_between_idp_config_and_the_environment(tmp_path: Path) -> None:
    path = effective_file(tmp_path)
    environ = {"IDP_EFFECTIVE_CONFIG": str(path)}
    settings = load_settings(environ=environ)
    assert (settings.issuer, settings.database_url) == (
        "http://127.0.0.1:5103",
        "sqlite:///run.sqlite3",
    )
    assert settings.jwks_max_age == 300  # only what make run records
    # The admin's explicit environment still wins, and so do a test's overrides.
    assert (
        load_settings(environ=environ | {"IDP_ISSUER": "http://127.0.0.1:6000"}).issuer
        == "http://127.0.0.1:6000"
    )
    assert (
        load_settings({"issuer": "http://localhost"}, environ=environ).issuer == "http://localhost"
    )
    assert path.stat().st_mode & 0o077 == 0  # the database URL may hold a password


def test_an_effective_file_of_another_idp_config_is_ignored(tmp_path: Path) -> None:
    environ = config_file(tmp_path, 'issuer = "https://idp.example.lv"\n')
    path = effective_file(tmp_path)  # written by a run without IDP_CONFIG
    environ["IDP_EFFECTIVE_CONFIG"] = str(path)
    assert load_settings(environ=environ).issuer == "https://idp.example.lv"
    # Written under this very IDP_CONFIG: it counts, over the file's own issuer.
    path = effective_file(tmp_path, idp_config=environ["IDP_CONFIG"])
    assert load_settings(environ=environ).issuer == "http://127.0.0.1:5103"


def test_no_effective_file_unless_the_real_environment_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import idp.settings

    path = effective_file(tmp_path)
    monkeypatch.setattr(idp.settings, "EFFECTIVE_CONFIG", path)
    # An explicit environ (tests) never reads the default file ...
    assert load_settings(environ={}).issuer == "http://127.0.0.1:5000"
    # ... nor does an empty IDP_EFFECTIVE_CONFIG, nor a missing file.
    monkeypatch.setenv("IDP_EFFECTIVE_CONFIG", "")
    assert load_settings().issuer == "http://127.0.0.1:5000"
    monkeypatch.setenv("IDP_EFFECTIVE_CONFIG", str(tmp_path / "none.toml"))
    assert load_settings().issuer == "http://127.0.0.1:5000"
    # The process environment without IDP_EFFECTIVE_CONFIG: the default place counts.
    monkeypatch.delenv("IDP_EFFECTIVE_CONFIG")
    for name in ("IDP_CONFIG", "IDP_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings().issuer == "http://127.0.0.1:5103"
    assert idp.settings.EFFECTIVE_CONFIG.name == "effective.toml"


def test_a_bad_effective_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "effective.toml"
    path.write_text('secret_key = "x"\n[written_by]\nidp_config = ""\n')
    message = settings_error(environ={"IDP_EFFECTIVE_CONFIG": str(path)})
    assert message.startswith(f"unknown setting 'secret_key' in {path}")
    path.write_text("issuer = \n")
    assert "not valid TOML" in settings_error(environ={"IDP_EFFECTIVE_CONFIG": str(path)})


def test_the_default_effective_file_is_under_instance_and_ignored_by_git() -> None:
    from idp.settings import EFFECTIVE_CONFIG

    assert EFFECTIVE_CONFIG == PROJECT_ROOT / "instance" / "effective.toml"
    assert "instance/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert "$(BIN)/python -m idp.effective" in (PROJECT_ROOT / "Makefile").read_text()


# --- the utility's look (issue 14) ---------------------------------------------------------------


def test_the_brand_has_good_defaults_in_every_language() -> None:
    settings = load_settings(environ={})
    assert settings.brand_name_in("lv") == "Gāzes klientu portāls"
    assert settings.brand_name_in("ru") == "Портал клиентов газоснабжения"
    assert settings.brand_name_in("en") == "Gas customer portal"
    assert settings.brand_primary_colour == "#0b4f6c"
    assert (PROJECT_ROOT / "static" / settings.brand_logo).is_file()
    assert (PROJECT_ROOT / "static" / settings.brand_favicon).is_file()
    assert settings.privacy_url == ""  # no link until the utility names its notice
    assert settings.brand_home_url == ""  # the logo leads to the portal's start page
    assert settings.brand_image_origins == ()


def test_the_brand_name_is_per_language_like_the_support_contact() -> None:
    one = load_settings(environ={"IDP_BRAND_NAME": "Latvijas Gāze"})
    assert one.brand_name_in("ru") == one.brand_name_in("en") == "Latvijas Gāze"
    table = load_settings(environ={"IDP_BRAND_NAME": '{"lv": "Gāze", "ru": "Газ"}'})
    assert (table.brand_name_in("ru"), table.brand_name_in("en")) == ("Газ", "Gāze")
    for bad in ('{"en": "Gas"}', '{"lv": " "}'):
        assert "brand_name" in settings_error(environ={"IDP_BRAND_NAME": bad})


@pytest.mark.parametrize("name", ["brand_primary_colour", "brand_accent_colour"])
@pytest.mark.parametrize("colour", ["0b4f6c", "#0b4f6", "#0b4f6cff", "blue", "#gg0000", ""])
def test_a_brand_colour_must_be_hex_rrggbb(name: str, colour: str) -> None:
    message = settings_error({name: colour})
    assert f"setting '{name}' (IDP_{name.upper()}) must be a colour written #rrggbb" in message


def test_a_brand_colour_in_capitals_is_accepted() -> None:
    assert load_settings({"brand_primary_colour": "#AA0033"}, environ={}).brand_primary_colour


@pytest.mark.parametrize("name", ["brand_logo", "brand_favicon"])
@pytest.mark.parametrize(
    "value",
    [
        "",
        "missing.svg",
        "../README.md",
        "/etc/passwd",
        "http://cdn.example.lv/logo.svg",
        "https://user@cdn.example.lv/logo.svg",
        "https://cdn.example.lv/a;b.svg",
        "ftp://cdn.example.lv/logo.svg",
    ],
)
def test_a_brand_image_is_a_file_under_static_or_an_https_url(name: str, value: str) -> None:
    message = settings_error({name: value})
    assert f"setting '{name}' (IDP_{name.upper()})" in message
    assert "static/" in message and "https" in message


def test_an_https_logo_is_allowed_and_its_host_named_for_the_pages_csp() -> None:
    settings = load_settings(
        {
            "brand_logo": "https://cdn.example.lv/brand/logo.svg",
            "brand_favicon": "https://cdn.example.lv/favicon.ico",
        },
        environ={},
    )
    assert settings.brand_image_origins == ("https://cdn.example.lv",)


@pytest.mark.parametrize("name", ["brand_home_url", "privacy_url"])
@pytest.mark.parametrize(
    "value", ["www.example.lv", "/privacy", "javascript:alert(1)", "https://", "https://a b.lv"]
)
def test_the_brand_links_must_be_absolute_http_urls(name: str, value: str) -> None:
    message = settings_error({name: value})
    assert f"setting '{name}' (IDP_{name.upper()}) must be an absolute http(s) URL" in message


def test_the_brand_links_may_carry_a_query_and_a_fragment() -> None:
    settings = load_settings(
        {
            "privacy_url": "https://www.example.lv/privatums?lang=lv#portals",
            "brand_home_url": "https://www.example.lv/",
        },
        environ={},
    )
    assert settings.privacy_url.endswith("#portals")
