"""Bad configuration and bad arguments: one line naming the problem, exit code 2."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Invoke, one_line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRONICORN_MAX_CONCURRENCY", "abc"),
        ("CRONICORN_PROCESSING_INTERVAL_MS", "-5"),
        ("CRONICORN_ALLOW_PRIVATE_NETWORKS", "maybe"),
        ("CRONICORN_DATABASE_URL", "mysql://nope"),
    ],
)
@pytest.mark.parametrize("command", [["engine", "process"], ["engine", "start"]])
async def test_bad_env_var_prints_one_line_naming_it_and_exits_2(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    command: list[str],
) -> None:
    monkeypatch.setenv(variable, value)
    result = await invoke(*command)
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert variable in line
    assert result.stdout == ""


async def test_api_url_without_key_is_a_usage_error(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONICORN_API_URL", "http://127.0.0.1:9")
    result = await invoke("jobs", "list")
    assert result.exit_code == 2
    assert "CRONICORN_API_KEY" in one_line(result.stderr)


async def test_require_ai_without_key_exits_2(invoke: Invoke) -> None:
    result = await invoke("engine", "start", "--require-ai")
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in one_line(result.stderr)


async def test_unlock_jobs_needs_stale_or_job(invoke: Invoke) -> None:
    result = await invoke("engine", "unlock-jobs")
    assert result.exit_code == 2
    assert "--stale" in result.output


async def test_job_validation_errors_name_the_option(invoke: Invoke) -> None:
    result = await invoke(
        "jobs", "create", "--name", "x", "--definition", "poll", "--interval-ms", "5"
    )
    assert result.exit_code == 2
    assert "--interval-ms" in one_line(result.stderr)


async def test_unknown_job_is_reported_without_traceback(invoke: Invoke) -> None:
    result = await invoke("jobs", "show", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 1
    assert "not found" in one_line(result.stderr)


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["keys", "create", "--tenant", "t"], ["serve", "--port", "0"]]
)
async def test_sync_commands_name_a_bad_database_url_and_exit_2(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("CRONICORN_DATABASE_URL", "mysql://nope")
    result = await invoke(*command)
    assert result.exit_code == 2, result.output
    assert "CRONICORN_DATABASE_URL" in one_line(result.stderr)
    assert result.stdout == ""


async def test_keys_create_refuses_an_empty_tenant(invoke: Invoke) -> None:
    result = await invoke("keys", "create", "--tenant", "")
    assert result.exit_code == 2
    assert "--tenant" in one_line(result.stderr)
    assert result.stdout == ""
