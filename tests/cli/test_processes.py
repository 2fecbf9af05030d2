"""The console scripts as real processes: the demo, `cronicorn-engine start` and
`cronicorn run`, each ended by a signal where that is how users stop them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from subprocess import PIPE

import pytest

from cronicorn.store.secrets import SecretBox
from tests.fakes.fake_openai import FakeOpenAI

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRONICORN_", "OPENAI_"))}
    env["CRONICORN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'proc.db'}"
    env["CRONICORN_SECRET_KEY"] = SecretBox.generate_key()
    env["NO_COLOR"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return str(resp.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_demo_runs_and_prints_the_runs_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "cronicorn"), "demo", "--duration", "6"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Planner: rules" in out
    assert "Runs" in out
    assert "completed" in out
    assert "baseline_interval" in out
    assert "orders-backlog" in out
    assert re.search(r"Dashboard http://127\.0\.0\.1:\d+/ : sign in with the key ck_\S+", out)
    assert not list(tmp_path.glob("*.db")), "the demo must not write to the working directory"


def test_engine_start_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "cronicorn-engine"), "start", "--metrics-port", str(port), "--worker-id", "w1"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = _wait_http(f"http://127.0.0.1:{port}/health", proc)
        assert '"worker_id": "w1"' in health
        metrics = _wait_http(f"http://127.0.0.1:{port}/metrics", proc)
        assert "cronicorn_jobs_processed_total" in metrics
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "OPENAI_API_KEY" in err  # warned once: rules planner
    assert err.count("OPENAI_API_KEY") == 1


def test_run_serves_the_api_and_stops_on_sigint(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "cronicorn"), "run", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "ok" in _wait_http(f"http://127.0.0.1:{port}/health", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out


def test_demo_ctrl_c_ends_early_with_the_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "cronicorn"), "demo", "--duration", "120"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # wait for the first finished run
            lines.append(line)
            if "completed" in line or "failed" in line:
                break
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 20
    assert "Runs" in out
    assert "run(s). Next-run sources seen:" in out


async def test_demo_uses_the_ai_when_a_key_is_set(tmp_path: Path) -> None:
    async with FakeOpenAI(auto=True, next_run_s=3) as fake:
        env = _env(tmp_path)
        env.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=fake.base_url)
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "cronicorn"), "demo", "--duration", "5",
            env=env, cwd=tmp_path, stdout=PIPE, stderr=PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        planned = len(fake.requests)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "Planner: AI (gpt-4o via http://127.0.0.1:" in text
    assert planned >= 4  # a plan and a schedule call per run, two jobs
    assert "(ai)" in text  # progress lines: "next in 3.0s (ai)"
