"""Accounts: login by password, bank or eSignature, browser sessions, registration,
e-mail links, and the users of the previous portal."""
