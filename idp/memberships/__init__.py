"""Memberships: roles, rights and the acting context every token carries. Shared by every
feature (login, consent, the USERS section, the protocol); it imports none of them."""
