"""Revenue and AR: the waterfall, the deferred revenue roll-forward, RPO, one
contract's schedule; AR aging, subledger against GL, unapplied cash and credits."""

from __future__ import annotations

from fastapi import FastAPI

from finsync.views.services import Services


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""
    del app, services  # filled by the page's own work
