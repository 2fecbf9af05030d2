"""Our processes run on uvloop where it is installed, unless CRONICORN_EVENT_LOOP=asyncio."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from cronicorn.runtime import eventloop


async def loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_commands_run_on_uvloop_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.EVENT_LOOP_ENV, raising=False)
    assert issubclass(eventloop.run(loop_type()), uvloop.Loop)


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.EVENT_LOOP_ENV, "asyncio")
    assert not issubclass(eventloop.run(loop_type()), uvloop.Loop)
