"""`cronicorn jobs list|show|create` and `cronicorn endpoints add`: parse, call, print.

They talk to the API when `CRONICORN_API_URL` (+ `CRONICORN_API_KEY`) is set, else to the
service layer on the database (see `cronicorn.cli.gateway`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.table import Table

from cronicorn.cli.common import EXIT_USAGE, CliError, console, fail, new_typer, run
from cronicorn.cli.gateway import Gateway, open_gateway
from cronicorn.service.errors import FieldErrors
from cronicorn.service.schemas import EndpointCreate, EndpointOut, JobCreate, JobOut, RunOut

jobs_app = new_typer("List, show and create jobs.")
endpoints_app = new_typer("Add endpoints to jobs.")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def build_model(model: type[M], values: dict[str, Any]) -> M:
    """Validate CLI input with the API's own schema; errors name the option."""
    given = {key: value for key, value in values.items() if value is not None}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        problems = [
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        fail("; ".join(problems), EXIT_USAGE)


def _call(operation: Callable[[Gateway], Awaitable[T]]) -> T:
    """Run `operation` on the API or the database (whichever is configured); service
    validation errors become a usage error line."""

    async def on_gateway() -> T:
        try:
            async with open_gateway() as gw:
                return await operation(gw)
        except FieldErrors as exc:
            raise CliError("; ".join(msg for _, msg in exc.fields), EXIT_USAGE) from None

    return run(on_gateway())


def when(value: datetime | None) -> str:
    """A timestamp with how far it is from now, e.g. `12:00:05 (in 4s)`."""
    if value is None:
        return "-"
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    delta = (value - datetime.now(UTC)).total_seconds()
    rel = f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({rel})"


def schedule_text(job: JobOut) -> str:
    if job.cron:
        return f"cron {job.cron} {job.timezone}"
    if job.interval_ms:
        return f"every {job.interval_ms / 1000:g}s"
    return "AI/default"


def jobs_table(jobs: list[JobOut]) -> Table:
    table = Table(title="Jobs", title_justify="left")
    for column in ("id", "name", "status", "schedule", "next run", "source", "failures"):
        table.add_column(column)
    for job in jobs:
        source = job.last_schedule.source if job.last_schedule else None
        table.add_row(
            job.id,
            job.name,
            job.status,
            schedule_text(job),
            when(job.next_run_at),
            source or "-",
            str(job.consecutive_failures),
        )
    return table


def _dump(items: BaseModel | list[Any]) -> str:
    if isinstance(items, BaseModel):
        return items.model_dump_json(indent=2)
    return json.dumps([i.model_dump(mode="json") for i in items], indent=2)


@jobs_app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100, as_json: JsonFlag = False
) -> None:
    """Jobs, newest first (archived ones are hidden)."""
    jobs = _call(lambda gw: gw.list_jobs(limit))
    if as_json:
        print(_dump(jobs))
    elif not jobs:
        console.print("No jobs yet. Create one with `cronicorn jobs create`.")
    else:
        console.print(jobs_table(jobs))


def job_details(job: JobOut, endpoints: list[EndpointOut], runs: list[RunOut]) -> Table:
    table = Table(title=f"Job {job.name}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    last = job.last_schedule
    rows = {
        "id": job.id,
        "status": job.status,
        "definition": job.definition,
        "schedule": schedule_text(job),
        "interval bounds": f"{job.min_interval_ms / 1000:g}s … {job.max_interval_ms / 1000:g}s",
        "next run": when(job.next_run_at),
        "last run": when(job.last_run_at),
        "last decision": f"{last.source}: {last.reasoning}" if last else "-",
        "consecutive failures": str(job.consecutive_failures),
        "tokens": str(job.total_tokens),
        "endpoints": ", ".join(f"{e.name} ({e.method} {e.url})" for e in endpoints) or "-",
        "recent runs": ", ".join(f"{r.status} {r.success_count}✓ {r.failure_count}✗" for r in runs)
        or "-",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table


@jobs_app.command("show")
def show_job(job_id: str, as_json: JsonFlag = False) -> None:
    """One job with its endpoints and recent runs."""

    async def fetch(gw: Gateway) -> tuple[JobOut, list[EndpointOut], list[RunOut]]:
        job = await gw.get_job(job_id)
        return job, await gw.list_endpoints(job_id), await gw.runs(job_id, 5)

    job, endpoints, runs = _call(fetch)
    if as_json:
        data = job.model_dump(mode="json")
        data["endpoints"] = [e.model_dump(mode="json") for e in endpoints]
        print(json.dumps(data, indent=2))
    else:
        console.print(job_details(job, endpoints, runs))


@jobs_app.command("create")
def create_job(
    name: Annotated[str, typer.Option(help="1-200 characters.")],
    definition: Annotated[str, typer.Option(help="What the job does, in plain English.")],
    cron: Annotated[str | None, typer.Option(help="Baseline cron (5 or 6 fields).")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone for --cron.")] = None,
    interval_ms: Annotated[int | None, typer.Option(help="Baseline interval (>= 1000).")] = None,
    min_interval_ms: Annotated[int | None, typer.Option()] = None,
    max_interval_ms: Annotated[int | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a job (active, due at once). Add endpoints with `cronicorn endpoints add`."""
    data = build_model(
        JobCreate,
        {
            "name": name,
            "definition": definition,
            "cron": cron,
            "timezone": timezone,
            "interval_ms": interval_ms,
            "min_interval_ms": min_interval_ms,
            "max_interval_ms": max_interval_ms,
        },
    )
    job = _call(lambda gw: gw.create_job(data))
    if as_json:
        print(_dump(job))
    else:
        console.print(f"Created job [bold]{job.name}[/] {job.id}", highlight=False)


def parse_headers(values: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected K=V, got {item!r}", param_hint="--header")
        headers[name.strip()] = value
    return headers


@endpoints_app.command("add")
def add_endpoint(
    job_id: str,
    name: Annotated[str, typer.Option()],
    url: Annotated[str, typer.Option(help="http(s) URL.")],
    method: Annotated[str, typer.Option(help="GET, POST, PUT, PATCH, DELETE or HEAD.")] = "GET",
    header: Annotated[
        list[str] | None, typer.Option(help="K=V, repeatable (values are secrets).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Shown to the AI.")] = None,
    timeout_ms: Annotated[int | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an endpoint to a job."""
    data = build_model(
        EndpointCreate,
        {
            "name": name,
            "url": url,
            "method": method.upper(),
            "headers": parse_headers(header),
            "description": description,
            "timeout_ms": timeout_ms,
        },
    )
    endpoint = _call(lambda gw: gw.create_endpoint(job_id, data))
    if as_json:
        print(_dump(endpoint))
    else:
        console.print(
            f"Added endpoint [bold]{endpoint.name}[/] {endpoint.id} "
            f"({endpoint.method} {endpoint.url}) to job {job_id}",
            highlight=False,
        )
