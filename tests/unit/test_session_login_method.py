"""How a session was logged in, as "Sessions" says it (idp.access_history.login_method):
from the amr a password or a provider gave, else the assurance of docs/domain.md's table."""

from __future__ import annotations

import pytest

from idp.access_history import login_method

EPARAKSTS_MOBILE = "urn:eparaksts:tws:policies:authentication:adaptive:methods:mobileid"


@pytest.mark.parametrize(
    ("amr", "acr", "method"),
    [
        (["pwd"], "low", "password"),
        (["ext", "bank"], "substantial", "bank"),
        (["ext", "sc"], "high", "esignature"),
        (["ext", "swk"], "high", "esignature"),
        # A provider's own amr values (eParaksts): the assurance tells.
        ([EPARAKSTS_MOBILE], "high", "esignature"),
        ([], "substantial", "bank"),
        # A bank mapped to a low assurance says nothing more.
        ([], "low", "upstream"),
    ],
)
def test_the_way_a_session_was_logged_in(amr: list[str], acr: str, method: str) -> None:
    assert login_method(amr, acr=acr) == method


def test_the_upstreams_own_method_wins() -> None:
    assert login_method(["pwd"], "esignature") == "esignature"
