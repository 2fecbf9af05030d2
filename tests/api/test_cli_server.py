"""`cronicorn keys create` and `cronicorn serve` as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.api.conftest import JOB

CLI = [sys.executable, "-m", "cronicorn.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONICORN_")}
    return {**env, "CRONICORN_DATABASE_URL": f"sqlite:///{tmp_path}/data/c.db", **extra}


def test_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = cli_env(tmp_path, CRONICORN_DATABASE_URL="mysql://db/x")
    r = subprocess.run([*CLI, "db", "upgrade"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "CRONICORN_DATABASE_URL" in r.stderr


def http(method: str, url: str, body: object = None, key: str | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until_up(proc: subprocess.Popen[bytes], base: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            if http("GET", f"{base}/health")[0] == 200:
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {proc.communicate()[1]!r}")
            time.sleep(0.1)


def test_keys_create_then_serve_from_an_empty_directory(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    created = subprocess.run(
        [*CLI, "keys", "create", "--tenant", "acme", "--scope", "user"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ck_")
    assert "\n" not in key
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, base)
        status, text = http("GET", f"{base}/ready")
        assert (status, json.loads(text)["status"]) == (200, "ready")
        status, text = http("POST", f"{base}/api/jobs", JOB, key)
        assert status == 201, text
        assert http("GET", f"{base}/api/jobs")[0] == 401
        assert 'route="/api/jobs",status="201"' in http("GET", f"{base}/metrics")[1]
        assert "/api/scheduler/claim" in json.loads(http("GET", f"{base}/openapi.json")[1])["paths"]
        assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(10)


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.timeout(300)
def test_serve_with_workers_runs_that_many_api_processes_on_one_port(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    key = subprocess.run(
        [*CLI, "keys", "create", "--tenant", "acme", "--scope", "user"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, base, within_s=180)  # each worker imports the app on its own
        deadline = time.monotonic() + 180
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # uvicorn's supervisor spawns one Python process per worker.
        workers = [p for p in _children(proc.pid) if "python" in _cmdline(p)]
        assert len(workers) >= 2
        for i in range(10):
            status, text = http("POST", f"{base}/api/jobs", {**JOB, "name": f"j{i}"}, key)
            assert status == 201, text
        status, text = http("GET", f"{base}/api/jobs?limit=50", key=key)
        assert status == 200
        assert len(json.loads(text)) == 10
    finally:
        proc.terminate()
        proc.wait(15)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
