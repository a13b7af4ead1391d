"""Upstream identity providers (internet banks, eSignature). Each connector turns an
upstream login into a `VerifiedIdentity`; this package knows nothing of users or customers.
"""
