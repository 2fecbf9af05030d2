"""`cronicorn mcp`: serve the MCP tools over stdio for an AI assistant (Claude Desktop,
Cursor, VS Code, any MCP client), against the REST API in `CRONICORN_API_URL`."""

from __future__ import annotations

import logging
import sys

from cronicorn.cli.common import EXIT_USAGE, CliError, run
from cronicorn.cli.compose import api_target
from cronicorn.engine.factory import API_KEY_ENV, API_URL_ENV


def mcp_command() -> None:
    """Serve the MCP tools over stdio. Needs CRONICORN_API_URL and CRONICORN_API_KEY (a
    `user` key: the assistant sees that key's tenant only). The API server also serves the
    same tools over streamable HTTP at /mcp."""
    run(_serve())


async def _serve() -> None:
    target = api_target()
    if target is None:
        raise CliError(
            f"{API_URL_ENV}: required (the REST API to talk to), with {API_KEY_ENV}", EXIT_USAGE
        )
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    from cronicorn.mcp.stdio import serve_stdio

    await serve_stdio(target.url, target.key)
