"""Customer data: the parties registration is matched against (DOMAIN.md, "People and
accounts"), loaded by admins from the utility's customer database with `idp customers`."""
