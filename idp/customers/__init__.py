"""Customer data: the parties registration is matched against (docs/domain.md, "People and
accounts"), loaded by admins from the utility's customer database with `idp customers`."""
