"""Upstream identity providers as admins configure them (`idp providers`): each one a
connector of providers/ with its settings and encrypted client secret."""
