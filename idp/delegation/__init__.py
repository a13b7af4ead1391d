"""Acting for a customer: the USERS section and the admin commands that invite, change and
remove additional users and authorised persons (roles and rights: idp.memberships)."""
