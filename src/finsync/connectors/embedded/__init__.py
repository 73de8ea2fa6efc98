"""Connectors to the embedded reference systems (systems/): error translation only."""
