"""Escalation levels and the run-failure rule (SPEC §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain.escalation import escalation_level, failure_ratio, is_run_failure
from cronicorn.domain.models import EndpointResult, EndpointStatus, ErrorCategory, Escalation

S, F, K, A = (
    EndpointStatus.SUCCESS,
    EndpointStatus.FAILED,
    EndpointStatus.SKIPPED,
    EndpointStatus.ABORTED,
)


def results(*statuses: EndpointStatus) -> list[EndpointResult]:
    return [EndpointResult(endpoint_id=f"e{i}", status=s) for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), Escalation.NONE),
        ((S, S, S, S), Escalation.NONE),
        ((F, S, S, S, S), Escalation.NONE),  # 0.2 < 0.25
        ((F, S, S, S), Escalation.WARN),  # exactly 0.25
        ((F, F, S, S, S), Escalation.WARN),  # 0.4
        ((F, S), Escalation.CRITICAL),  # exactly 0.5
        ((F, F, F), Escalation.CRITICAL),
        ((F, S, S, S, K, K, K), Escalation.WARN),  # skipped don't dilute: 1/4
        ((F, S, A, A), Escalation.CRITICAL),  # aborted don't dilute: 1/2
        ((K, A), Escalation.NONE),
    ],
)
def test_escalation_levels(statuses: tuple[EndpointStatus, ...], expected: Escalation) -> None:
    assert escalation_level(results(*statuses), 0.25, 0.5) is expected


@given(st.lists(st.sampled_from([S, F, K, A]), max_size=30))
def test_escalation_is_monotone_in_failure_ratio(statuses: list[EndpointStatus]) -> None:
    level = escalation_level(results(*statuses), 0.25, 0.5)
    ratio = failure_ratio(results(*statuses))
    assert 0.0 <= ratio <= 1.0
    order = [Escalation.NONE, Escalation.WARN, Escalation.CRITICAL]
    worse = escalation_level(results(*statuses, F), 0.25, 0.5)
    assert order.index(worse) >= order.index(level)
    if F not in statuses:
        assert level is Escalation.NONE


def test_run_fails_when_every_attempted_endpoint_failed() -> None:
    assert is_run_failure(results(F, F, K, A))
    assert not is_run_failure(results(F, S))


def test_nothing_attempted_is_not_a_failure() -> None:
    assert not is_run_failure([])
    assert not is_run_failure(results(A, A))


def test_failed_critical_endpoint_fails_the_run() -> None:
    rs = results(F, S, S)
    assert not is_run_failure(rs)
    assert is_run_failure(rs, critical_endpoint_ids={"e0"})
    assert not is_run_failure(rs, critical_endpoint_ids={"e1"})  # critical one succeeded


@pytest.mark.parametrize(
    "category", [ErrorCategory.CRITICAL_FAILURE, ErrorCategory.DEPENDENCY_FAILED]
)
def test_skip_caused_by_critical_failure_fails_the_run(category: ErrorCategory) -> None:
    rs = [
        EndpointResult(endpoint_id="a", status=S),
        EndpointResult(endpoint_id="b", status=F),
        EndpointResult(endpoint_id="c", status=K, error_category=category),
    ]
    assert is_run_failure(rs)
