"""`install_dashboard(app)`: the dashboard's routers and its packaged static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    # Imported here: the routes import the API's error formatting, and `cronicorn.api`
    # imports this module while it loads.
    from cronicorn.web import admin_routes, auth_routes, job_routes

    for module in (auth_routes, job_routes, admin_routes):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
