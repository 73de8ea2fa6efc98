"""The console's overview: money at stake by class and age, reconciliation variance
and its trend, the DESIGN §7 metrics, and the pipeline's health."""

from __future__ import annotations

from fastapi import FastAPI

from finsync.views.services import Services


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""
    del app, services  # filled by the page's own work
