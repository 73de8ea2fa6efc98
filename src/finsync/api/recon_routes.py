"""Reconciliation: the six checks per entity as of a date, the drill-down of a
break, the variance trend, and runs started in the background with their progress."""

from __future__ import annotations

from fastapi import FastAPI

from finsync.views.services import Services


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""
    del app, services  # filled by the page's own work
