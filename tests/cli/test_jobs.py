"""`keys`, `jobs` and `endpoints` flows on SQLite: in-process, and through a live API."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Invoke, one_line


async def _flow(invoke: Invoke) -> str:
    """Create a job and an endpoint through the CLI, read them back; returns the job id."""
    created = await invoke(
        "jobs", "create", "--name", "orders", "--definition", "Poll the orders API.",
        "--interval-ms", "60000", "--min-interval-ms", "5000", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    job = json.loads(created.stdout)
    assert job["interval_ms"] == 60_000
    assert job["min_interval_ms"] == 5_000

    added = await invoke(
        "endpoints", "add", job["id"], "--name", "backlog", "--url", "http://127.0.0.1:1/b",
        "--method", "post", "--header", "X-Token=s3cret", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    endpoint = json.loads(added.stdout)
    assert endpoint["method"] == "POST"
    assert endpoint["headers"] == {"X-Token": "***"}

    listed = await invoke("jobs", "list", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]
    shown = await invoke("jobs", "show", job["id"], "--json")
    detail = json.loads(shown.stdout)
    assert [e["name"] for e in detail["endpoints"]] == ["backlog"]
    assert "s3cret" not in shown.stdout

    table = await invoke("jobs", "show", job["id"])
    assert table.exit_code == 0
    assert "backlog (POST http://127.0.0.1:1/b)" in table.stdout
    return str(job["id"])


async def test_flow_in_process_without_any_key(invoke: Invoke) -> None:
    await _flow(invoke)
    human = await invoke("jobs", "list")
    assert "orders" in human.stdout
    assert "every 60s" in human.stdout


async def test_in_process_key_scopes_jobs_to_its_tenant(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_a = one_line((await invoke("keys", "create", "--tenant", "a")).stdout)
    key_b = one_line((await invoke("keys", "create", "--tenant", "b")).stdout)
    monkeypatch.setenv("CRONICORN_API_KEY", key_a)
    job_id = await _flow(invoke)
    monkeypatch.setenv("CRONICORN_API_KEY", key_b)
    assert json.loads((await invoke("jobs", "list", "--json")).stdout) == []
    other = await invoke("jobs", "show", job_id)
    assert other.exit_code == 1
    assert "not found" in other.stderr


async def test_flow_through_the_api(
    invoke: Invoke, live_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = one_line((await invoke("keys", "create", "--tenant", "acme")).stdout)
    # From here on, a database the CLI could reach directly would be wrong: use the API only.
    monkeypatch.setenv("CRONICORN_DATABASE_URL", "sqlite:////nonexistent/dir/never.db")
    monkeypatch.setenv("CRONICORN_API_URL", live_api)
    monkeypatch.setenv("CRONICORN_API_KEY", key)
    await _flow(invoke)
    bad = await invoke("jobs", "create", "--name", "x", "--definition", "y", "--cron", "nope")
    assert bad.exit_code == 2
    assert "cron" in one_line(bad.stderr)


async def test_wrong_api_key_is_one_line(
    invoke: Invoke, live_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONICORN_API_URL", live_api)
    monkeypatch.setenv("CRONICORN_API_KEY", "ck_wrong")
    result = await invoke("jobs", "list")
    assert result.exit_code == 1
    assert "401" in one_line(result.stderr)


@pytest.mark.parametrize(
    ("cron", "accepted", "fragment"),
    [
        ("@hourly", True, ""),
        ("0 0 31 2 *", False, "never fires"),
        ("0 0 * * * 30", False, "bad day-of-week"),
    ],
)
async def test_cli_accepts_exactly_the_crons_the_scheduler_runs(
    invoke: Invoke, cron: str, accepted: bool, fragment: str
) -> None:
    result = await invoke("jobs", "create", "--name", "x", "--definition", "y", "--cron", cron)
    assert (result.exit_code == 0) is accepted, result.output
    if not accepted:
        assert result.exit_code == 2
        line = one_line(result.stderr)
        assert line.startswith("error: --cron: ")
        assert fragment in line
