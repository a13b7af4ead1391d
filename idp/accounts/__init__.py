"""Accounts: the login page, browser sessions, and (later) registration and e-mail links."""
