"""The dashboard: server-rendered pages at `/` over the service layer.

`cronicorn.web.app.install_dashboard(app)` adds it to the API application; templates and
static assets ship inside this package (no CDN, no build step).
"""
