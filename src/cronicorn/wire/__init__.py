"""What travels over the REST API between processes, as pydantic models.

`cronicorn.wire.scheduler`: the bodies of the scheduler routes (`/api/scheduler/*`), shared by
the API (`api/routes/scheduler.py`) and its clients (`client/`). This package depends only on
the domain and pydantic, so a client imports no server code.
"""
