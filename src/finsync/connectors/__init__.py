"""Connector ports (one Protocol per role) and their adapters."""
