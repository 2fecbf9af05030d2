"""The simulated service's behaviour over time, per scenario (pure).

Each scenario is a timeline over simulated hours: what `GET /queue` answers at any moment
(a queue length and a status, or an outage) and the moments that count as a *change* (for
each, the simulator reports how long the schedule took to react).

- `steady`: a queue of about 20 all day; no change.
- `surge`: a traffic spike — the queue jumps to 400 at 06:07 and is back to 20 at 08:07.
- `outage`: the endpoint answers 503 from 10:05 to 11:05, then recovers.

(Changes fall between the hour marks on purpose: on the hour, runs of a 10- or 15-minute
cadence and hourly decision expiries would coincide with them.)
- `drift`: the queue grows slowly from 20 to 400 over the day; it crosses the "high" mark
  (100) at about 05:03.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

HIGH_QUEUE = 100


@dataclass(frozen=True, slots=True)
class Answer:
    """What the service answers at one moment."""

    status: int
    body: dict[str, object]


@dataclass(frozen=True, slots=True)
class Change:
    at_h: float
    description: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    answer: Callable[[float], Answer]
    """Hours since the start → the answer."""
    changes: tuple[Change, ...] = ()


def _queue(n: int) -> Answer:
    return Answer(200, {"queue": n, "status": "high" if n > HIGH_QUEUE else "normal"})


def _steady(hours: float) -> Answer:
    return _queue(20)


SURGE = (6 + 7 / 60, 8 + 7 / 60)
OUTAGE = (10 + 5 / 60, 11 + 5 / 60)


def _surge(hours: float) -> Answer:
    return _queue(400 if SURGE[0] <= hours < SURGE[1] else 20)


def _outage(hours: float) -> Answer:
    if OUTAGE[0] <= hours < OUTAGE[1]:
        return Answer(503, {"error": "service unavailable"})
    return _queue(20)


DRIFT_PER_HOUR = (400 - 20) / 24


def _drift(hours: float) -> Answer:
    return _queue(round(20 + DRIFT_PER_HOUR * min(hours, 24.0)))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("steady", "a queue of about 20 all day", _steady),
        Scenario(
            "surge",
            "the queue jumps to 400 at 06:07 and is back to 20 at 08:07",
            _surge,
            (Change(SURGE[0], "queue 20 → 400"), Change(SURGE[1], "queue 400 → 20")),
        ),
        Scenario(
            "outage",
            "503 from 10:05 to 11:05, then healthy again",
            _outage,
            (Change(OUTAGE[0], "endpoint down (503)"), Change(OUTAGE[1], "endpoint back")),
        ),
        Scenario(
            "drift",
            "the queue grows from 20 to 400 over the day",
            _drift,
            (Change((HIGH_QUEUE - 20) / DRIFT_PER_HOUR, "queue passes 100 (drifting up)"),),
        ),
    )
}
