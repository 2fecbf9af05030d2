"""`logger` settings given to `create_scheduling_engine` reach the log: format, level and
`sampling_rate` (the per-attempt lines are sampled; run summaries never are)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn import create_scheduling_engine
from cronicorn.ai import RulesPlanner
from cronicorn.executor import HttpExecutor
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.e2e_observability.conftest import EndpointDef, EndpointServer, add_jobs, config


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("rate", [0.0, 1.0])
@pytest.mark.usefixtures("restore_root_logging")
async def test_logger_config_sets_format_level_and_sampling(
    db: AsyncEngine, box: SecretBox, server: EndpointServer, rate: float
) -> None:
    await add_jobs(db, box, server, [EndpointDef("/ok"), EndpointDef("/ok", name="b")], 3)
    cfg = config(logger={"level": "DEBUG", "format": "json", "sampling_rate": rate})
    engine = create_scheduling_engine(
        cfg,
        backend=LocalSchedulerBackend(db, box),
        planner=RulesPlanner(),
        executor=HttpExecutor(cfg.execution),
    )
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_cronicorn_handler", 0)]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        assert (await engine.process_cycle()).successful_jobs == 3
    finally:
        await engine.stop()
        await engine.backend.close()  # type: ignore[attr-defined]
        await engine.executor.close()  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    messages = [line["msg"] for line in lines]
    attempts = [m for m in messages if " attempt 1: " in m]
    finished = [line for line in lines if line["logger"] == "cronicorn.engine.endpoints"]
    assert len(attempts) == (6 if rate == 1.0 else 0)
    assert len(finished) == (6 if rate == 1.0 else 0)
    assert sum(m.startswith("job completed") for m in messages) == 3  # never sampled
