"""The package layers hold (docs/architecture.md, "The layers"): the
import-linter contracts of .importlinter, so that `pytest` alone catches an import that
runs back up, and a complete list of the shared modules those contracts check."""

from __future__ import annotations

import configparser
import pkgutil

from importlinter import configuration
from importlinter.application.use_cases import lint_imports

import idp
from idp.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / ".importlinter"
FEATURES = {
    "idp.my_account",
    "idp.oidc",
    "idp.consent",
    "idp.delegation",
    "idp.accounts",
    "idp.customers",
    "idp.upstream_providers",
}
# They assemble the features (create_app in idp/__init__.py, the command group, the page
# and error registration, the fast path, the purge job, the demo): exempt.
ENTRY_POINTS = {
    "idp.cli",
    "idp.mail_cli",
    "idp.pages",
    "idp.errors",
    "idp.fastpath",
    "idp.housekeeping",
    "idp.demo",
}


def test_the_import_contracts_are_kept() -> None:
    configuration.configure()  # what the lint-imports command does first
    assert lint_imports(config_filename=str(CONFIG), cache_dir=None, no_logo=True)


def test_every_module_under_idp_is_a_feature_an_entry_point_or_checked_as_shared() -> None:
    config = configparser.ConfigParser()
    config.read(CONFIG)
    shared = set(config["importlinter:contract:shared"]["source_modules"].split())
    modules = {f"idp.{m.name}" for m in pkgutil.iter_modules(idp.__path__)} - {"idp.translations"}
    unclassified = modules - FEATURES - ENTRY_POINTS - shared
    assert not unclassified, f"add them to the shared contract in .importlinter: {unclassified}"
    assert not (shared - modules), "the shared contract names modules that do not exist"
