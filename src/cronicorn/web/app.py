"""`install_dashboard(app)`: the dashboard's routers and its packaged static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cronicorn.web import admin_routes, auth_routes, job_routes

STATIC_DIR = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    for module in (auth_routes, job_routes, admin_routes):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
