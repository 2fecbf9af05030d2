"""`cronicorn mcp` without its configuration stops with one line naming the variable."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from cronicorn.cli.main import app


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {},
            "error: CRONICORN_API_URL: required (the REST API to talk to), with CRONICORN_API_KEY",
        ),
        (
            {"CRONICORN_API_URL": "http://127.0.0.1:9"},
            "error: CRONICORN_API_KEY: required when CRONICORN_API_URL is set",
        ),
        (
            {"CRONICORN_API_URL": "ftp://x", "CRONICORN_API_KEY": "k"},
            "error: CRONICORN_API_URL: must be an http(s) URL (got 'ftp://x')",
        ),
    ],
)
def test_mcp_needs_the_api_url_and_key(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("CRONICORN_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["mcp"])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""
