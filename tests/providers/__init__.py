"""Tests of the upstream connectors (providers/) against real and hostile peers."""
