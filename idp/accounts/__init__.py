"""Accounts: the login page, browser sessions, registration, e-mail links, the upstream
(bank, eSignature) logins and the invited person's side of an invitation."""
