"""Acting for a customer: roles, rights, and (later) the USERS section and admin commands."""
