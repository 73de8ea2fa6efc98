"""Close and the contract timeline: per entity and period the status, the
cut-off checklist, revenue journals, close and reopen; one correlation id's milestones and
external calls."""

from __future__ import annotations

from fastapi import FastAPI

from finsync.views.services import Services


def register(app: FastAPI, services: Services) -> None:
    """This page's routes on `app`, reading through `services`."""
    del app, services  # filled by the page's own work
