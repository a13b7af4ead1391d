"""Assurance levels of a login (docs/domain.md, "Ways to log in"), weakest first: the `acr`
values this IdP issues, and the step-up rule of a client's `acr_values`. Shared by the
protocol (which asks for a stronger login) and the login pages (which offer one)."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

ASSURANCE_LEVELS = ("low", "substantial", "high")


def required_assurance(params: MultiDict[str, str]) -> str | None:
    """Step-up: the weakest level the client named in `acr_values` (a space-separated list
    of acceptable values, OIDC Core §3.1.2.1); None when it named none we know."""
    wanted = [v for v in (params.get("acr_values") or "").split() if v in ASSURANCE_LEVELS]
    return min(wanted, key=ASSURANCE_LEVELS.index) if wanted else None


def below(acr: str, required: str | None) -> bool:
    """True when a session at `acr` is weaker than `required`."""
    if required is None:
        return False
    rank = ASSURANCE_LEVELS.index(acr) if acr in ASSURANCE_LEVELS else -1
    return rank < ASSURANCE_LEVELS.index(required)
