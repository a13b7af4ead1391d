"""Acting for a customer: roles, rights, the acting context tokens carry, the USERS section,
invitations, and the `idp delegation` and `idp audit` commands."""
