"""`cronicorn simulate SCENARIO`: the real pipeline on a virtual clock (see `runner`)."""

from __future__ import annotations

__all__ = ["SCENARIOS", "SimulationResult", "run_simulation"]


def __getattr__(name: str) -> object:
    if name == "SCENARIOS":
        from cronicorn.simulation.scenarios import SCENARIOS

        return SCENARIOS
    if name in ("SimulationResult", "run_simulation"):
        from cronicorn.simulation import runner

        return getattr(runner, name)
    raise AttributeError(name)
