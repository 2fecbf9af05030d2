"""The product's console scripts as real subprocesses, with their output kept in files.

`Processes` owns every process a test starts: teardown kills what is still running, and
`dump()` prints the tail of each one's output (called when the test failed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
DUMP_LINES = 80


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any CRONICORN_*/OPENAI_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRONICORN_", "OPENAI_"))}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        if self.running:
            self.popen.send_signal(signum)

    async def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if still running after `timeout_s` (waits in a thread:
        never blocks the event loop)."""
        try:
            return await asyncio.to_thread(self.popen.wait, timeout_s)
        except subprocess.TimeoutExpired:
            return None

    async def kill(self) -> None:
        if self.running:
            self.popen.kill()
        await self.wait(10)


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        log = self.log_dir / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def run(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> str:
        """Run a command to the end; its stdout (the command must exit 0)."""
        child = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, f"{name} exited {child.returncode}: {err.decode()}"
        return out.decode()

    async def stop_all(self) -> None:
        """SIGKILL whatever still runs: teardown must never leave a process behind."""
        for proc in self.procs:
            if proc.running:
                proc.popen.send_signal(signal.SIGKILL)
        for proc in self.procs:
            await proc.wait(10)

    def dump(self) -> None:
        for proc in self.procs:
            lines = proc.output().splitlines()[-DUMP_LINES:]
            print(f"\n===== {proc.name} (pid {proc.pid}, exit {proc.popen.poll()}) =====")
            print("\n".join(lines))
