"""Structured logs: correlation fields across tasks, secret masking, sampling."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from cronicorn.observability.logging import (
    configure_logging,
    current_context,
    log_context,
    sampled,
)
from cronicorn.observability.redaction import clear_secrets, redact, register_secret

log = logging.getLogger("cronicorn.test.observability")


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler: logging.Handler | None = None

    def setup(self, fmt: str = "json", sampling_rate: float = 1.0, level: str = "DEBUG") -> None:
        self.teardown()
        self.stream = io.StringIO()
        self.handler = configure_logging(
            level=level,
            fmt="json" if fmt == "json" else "text",
            sampling_rate=sampling_rate,
            stream=self.stream,
        )

    def teardown(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
            self.handler = None

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Our test logger's lines only (asyncio logs at DEBUG too)."""
        parsed = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [line for line in parsed if line["logger"] == log.name]


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    level = root.level
    cap = Captured()
    cap.setup()
    yield cap
    cap.teardown()
    root.setLevel(level)
    clear_secrets()


def test_json_line_shape(captured: Captured) -> None:
    with log_context(cycle_id="c1", worker_id="w1"):
        log.info("claimed %d jobs", 3, extra={"batch": 3, "names": ["a b"]})
    (line,) = captured.lines()
    assert line["msg"] == "claimed 3 jobs"
    assert line["level"] == "INFO"
    assert line["logger"] == "cronicorn.test.observability"
    assert line["ts"].endswith("Z")
    assert line["cycle_id"] == "c1"
    assert line["worker_id"] == "w1"
    assert line["batch"] == 3
    assert line["names"] == ["a b"]
    assert "job_id" not in line
    assert "sampled" not in line


async def test_correlation_fields_follow_each_asyncio_task(captured: Captured) -> None:
    async def run_job(n: int) -> None:
        with log_context(job_id=f"job-{n}", run_id=f"run-{n}"):
            for step in range(3):
                log.info("step", extra={"n": n, "step": step})
                await asyncio.sleep(0)  # interleave the tasks

    with log_context(cycle_id="cycle-7", worker_id="w1"):
        await asyncio.gather(*(run_job(n) for n in range(5)))
        log.info("cycle done")

    lines = captured.lines()
    steps = [line for line in lines if line["msg"] == "step"]
    assert len(steps) == 15
    for line in steps:
        assert line["job_id"] == f"job-{line['n']}"
        assert line["run_id"] == f"run-{line['n']}"
        assert line["cycle_id"] == "cycle-7"
        assert line["worker_id"] == "w1"
    (done,) = [line for line in lines if line["msg"] == "cycle done"]
    assert "job_id" not in done
    assert done["cycle_id"] == "cycle-7"


async def test_task_keeps_context_it_was_created_in(captured: Captured) -> None:
    release = asyncio.Event()

    async def later() -> None:
        await release.wait()
        log.info("late line")

    with log_context(job_id="j1"):
        task = asyncio.create_task(later())
    assert current_context() == {}
    release.set()
    await task
    (line,) = captured.lines()
    assert line["job_id"] == "j1"


def test_nested_contexts_restore_and_reject_unknown_fields() -> None:
    with log_context(job_id="outer"):
        with log_context(job_id="inner", endpoint_id="e1", run_id=None):
            assert current_context() == {"job_id": "inner", "endpoint_id": "e1"}
        assert current_context() == {"job_id": "outer"}
    assert current_context() == {}
    with pytest.raises(TypeError, match="tenant"), log_context(tenant="x"):
        pass


def test_explicit_extra_overrides_context(captured: Captured) -> None:
    with log_context(job_id="ctx"):
        log.info("x", extra={"job_id": "explicit"})
    assert captured.lines()[0]["job_id"] == "explicit"


SECRET = "s3cr3t-header-value-9f8e"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
API_KEY = "ak_live_0123456789"
COOKIE = "session=abcdef123456"


def _log_everything() -> None:
    headers = {"Authorization": f"Bearer {BEARER}", "X-Api-Key": API_KEY, "Cookie": COOKIE}
    log.info("calling with %s", headers)
    log.info("raw header line Authorization: Bearer %s then api_key=%s", BEARER, API_KEY)
    log.info(
        "request",
        extra={
            "headers": headers,
            "nested": {"creds": [{"password": "hunter22"}]},
            "value": SECRET,
            "usage": {"input_tokens": 5, "output_tokens": 7},
        },
    )
    log.info("registered secret inline: %s", SECRET)
    try:
        raise RuntimeError(f"upstream said no to {SECRET} / token={BEARER}")
    except RuntimeError:
        log.exception("call failed")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_reaches_the_output(captured: Captured, fmt: str) -> None:
    captured.setup(fmt=fmt)
    register_secret(SECRET)
    _log_everything()
    out = captured.text
    for value in (SECRET, BEARER, API_KEY, "abcdef123456", "hunter22"):
        assert value not in out
    assert "***" in out
    assert "RuntimeError" in out  # the traceback is still there, just masked
    if fmt == "json":
        lines = captured.lines()
        request = next(line for line in lines if line["msg"] == "request")
        assert request["headers"] == {
            "Authorization": "***",
            "X-Api-Key": "***",
            "Cookie": "***",
        }
        assert request["usage"] == {"input_tokens": 5, "output_tokens": 7}
        assert "exc_info" in next(line for line in lines if line["msg"] == "call failed")


def test_unregistered_secret_in_plain_field_would_leak_without_registration(
    captured: Captured,
) -> None:
    # Proves the registration test above can fail: nothing masks an arbitrary value by itself.
    log.info("value", extra={"value": SECRET})
    assert SECRET in captured.text


def test_redact_keeps_numbers_and_short_values() -> None:
    register_secret("abc")  # too short to register
    try:
        assert redact({"lease_token": 12, "msg": "abc"}) == {"lease_token": 12, "msg": "abc"}
        assert redact("token=42 fencing") == "token=42 fencing"
    finally:
        clear_secrets()


def test_text_format_has_key_value_suffix(captured: Captured) -> None:
    captured.setup(fmt="text")
    with log_context(job_id="j1"):
        log.warning("slow endpoint", extra={"duration_ms": 12.5, "url": "http://x/a b"})
    line = captured.text.strip()
    assert "WARNING cronicorn.test.observability: slow endpoint" in line
    assert "job_id=j1" in line
    assert "duration_ms=12.5" in line
    assert 'url="http://x/a b"' in line


@pytest.mark.parametrize(("rate", "kept"), [(0.25, 25), (0.1, 10), (0.0, 0), (1.0, 100)])
def test_sampling_keeps_the_configured_fraction(captured: Captured, rate: float, kept: int) -> None:
    captured.setup(sampling_rate=rate)
    noisy = sampled(log)
    for i in range(100):
        noisy.info("attempt %d", i, extra={"attempt": i})
        log.info("always %d", i)
    lines = captured.lines()
    attempts = [line for line in lines if line["msg"].startswith("attempt")]
    assert len(attempts) == kept
    assert len([line for line in lines if line["msg"].startswith("always")]) == 100
    if 0 < kept < 100:  # evenly spread, not the first N
        assert attempts[-1]["attempt"] > 90
    assert all("attempt" in line for line in attempts)


def test_sampled_extra_flag_and_warnings_survive(captured: Captured) -> None:
    captured.setup(sampling_rate=0.0)
    log.info("dropped", extra={"sampled": True})
    log.warning("kept", extra={"sampled": True})
    assert [line["msg"] for line in captured.lines()] == ["kept"]


def test_level_and_reconfigure_replace_handler(captured: Captured) -> None:
    captured.setup(level="WARNING")
    log.info("hidden")
    log.error("shown")
    assert [line["msg"] for line in captured.lines()] == ["shown"]
    ours = [h for h in logging.getLogger().handlers if h is captured.handler]
    assert len(ours) == 1
    with pytest.raises(ValueError, match="format"):
        configure_logging(fmt="xml")  # type: ignore[arg-type]
