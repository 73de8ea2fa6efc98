"""The exception queue: filtered listing, detail, the queue's actions and the
approvals inbox."""

from __future__ import annotations

from fastapi import FastAPI

from finsync.views.services import Services


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""
    del app, services  # filled by the page's own work
