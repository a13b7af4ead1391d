"""Consent: the scope catalogue, the remembered grant, and the consent page."""
