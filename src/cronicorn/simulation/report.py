"""Printing a simulation's result (Rich tables)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from cronicorn.simulation.runner import SimulationResult


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "no reaction"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def summary_table(results: Sequence[SimulationResult]) -> Table:
    table = Table(title="Simulation", show_lines=False)
    columns = ("scenario", "mode", "planner", "runs", "model calls", "tokens", "cost (USD)")
    for name in (*columns, "rules fallbacks"):
        table.add_column(name, justify="left" if name in columns[:3] else "right")
    for r in results:
        table.add_row(
            r.scenario,
            r.mode,
            r.planner if r.model is None else f"{r.planner} ({r.model})",
            str(len(r.runs)),
            str(r.ai_calls),
            f"{r.tokens:,}",
            f"{r.cost_usd:.4f}",
            str(r.fallbacks),
        )
    return table


def reactions_table(results: Sequence[SimulationResult]) -> Table | None:
    rows = [(r, x) for r in results for x in r.reactions]
    if not rows:
        return None
    table = Table(title="How long until the schedule reacted")
    for name in ("mode", "at", "change", "reacted after", "before", "after"):
        table.add_column(name)
    for r, x in rows:
        hh, mm = divmod(round(x.at_h * 60), 60)
        table.add_row(
            r.mode, f"{hh:02d}:{mm:02d}", x.description, _duration(x.reacted_after_s),
            x.before, x.after or "—",
        )  # fmt: skip
    return table


def print_results(console: Console, results: Sequence[SimulationResult]) -> None:
    console.print(summary_table(results))
    reactions = reactions_table(results)
    if reactions is not None:
        console.print(reactions)
    hours = results[0].hours if results else 24.0
    console.print(
        f"{hours:g} simulated hours; per simulated day: "
        + "; ".join(
            f"{r.mode}: {r.per_day(r.ai_calls):.0f} model calls, {r.per_day(r.tokens):,.0f} tokens"
            for r in results
        )
    )
