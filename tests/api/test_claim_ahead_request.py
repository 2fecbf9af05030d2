"""A claim ahead is bounded: the window must be shorter than the lease it takes (or the
lease could run out before the job's due time) and at most `MAX_AHEAD_MS`. Refused at the
wire (the API answers 422, nothing is claimed) and in the engine's configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cronicorn.engine.config import EngineConfig
from cronicorn.wire.scheduler import MAX_AHEAD_MS, ClaimRequest


def request(**fields: int) -> ClaimRequest:
    return ClaimRequest.model_validate({"worker_id": "w1", "limit": 5, "lease_ms": 5_000, **fields})


def test_a_claim_ahead_within_its_lease_is_accepted() -> None:
    assert request().ahead_ms == 0
    assert request(ahead_ms=4_999).ahead_ms == 4_999


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ahead_ms": 5_000}, "ahead_ms must be less than lease_ms"),
        ({"ahead_ms": MAX_AHEAD_MS + 1, "lease_ms": 60_000}, "less than or equal to 10000"),
        ({"ahead_ms": -1}, "greater than or equal to 0"),
    ],
)
def test_a_claim_ahead_beyond_its_bounds_is_refused(fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        request(**fields)


def test_the_engine_refuses_a_claim_ahead_window_as_long_as_its_lease() -> None:
    assert EngineConfig.model_validate({}).scheduler.claim_ahead_ms == 200
    with pytest.raises(ValidationError, match="claim_ahead_ms must be less than"):
        EngineConfig.model_validate(
            {"scheduler": {"stale_lock_threshold_ms": 1_000, "claim_ahead_ms": 1_000}}
        )
