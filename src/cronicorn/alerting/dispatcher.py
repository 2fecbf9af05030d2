"""The alert dispatcher: a background task of the API process (and the all-in-one).

Each pass (1) turns queued run facts into incidents — opened, bumped or resolved, one open
incident per job and kind — and queues one delivery per channel for every opened incident
and every recovery, in one transaction; (2) sends due deliveries, each with its own retry
schedule (exponential backoff with jitter, `max_attempts`), within each channel's rate limit
(a delivery over the limit waits, it is not dropped). Runs never wait for any of this: the
engine's completion only inserted the facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.alerting.config import AlertSettings
from cronicorn.alerting.senders import AlertSender, DeliveryFailed, target_from_row
from cronicorn.domain.alerts import (
    DEFAULT_RULE,
    RECOVERABLE,
    AlertKind,
    AlertMessage,
    AlertRule,
    DeliveryEvent,
    IncidentView,
    RunFacts,
    evaluate,
    incident_message,
    recovery_message,
    rule_channels,
)
from cronicorn.store import alerts as store
from cronicorn.store.secrets import SecretBox

logger = logging.getLogger("cronicorn.alerting")

EVENT_BATCH = 200
DELIVERY_BATCH = 20
CLAIM_LOCK = timedelta(minutes=2)
RATE_WINDOW = timedelta(minutes=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retry_delay_ms(attempts: int, settings: AlertSettings, rng: random.Random) -> float:
    """Exponential backoff from `retry_base_ms`, capped at `retry_max_ms`, with jitter
    (half to all of the step), so a receiver coming back is not hit by every sender at once."""
    step = min(settings.retry_base_ms * 2 ** max(attempts - 1, 0), settings.retry_max_ms)
    return float(step) * (0.5 + rng.random() / 2)


class AlertDispatcher:
    """`start()` runs passes every `poll_ms` (or at once after `wake()`); `stop()` ends them."""

    def __init__(
        self,
        db: AsyncEngine,
        box: SecretBox,
        settings: AlertSettings,
        *,
        sender: AlertSender | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._box = box
        self._settings = settings
        self._sender = sender or AlertSender(settings)
        self._now = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="cronicorn-alerts")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._sender.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("alert dispatch pass failed; retrying at the next pass")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_ms / 1000)
            self._wake.clear()

    async def run_once(self) -> tuple[int, int]:
        """One pass: (facts processed, delivery attempts made)."""
        processed = await self.process_events()
        sent = await self.send_due()
        return processed, sent

    # -- facts → incidents → queued deliveries ---------------------------------------------

    async def process_events(self) -> int:
        async with self._db.connect() as conn:
            if await conn.scalar(store.HAS_EVENTS) is None:
                return 0
        try:
            async with self._db.begin() as conn:
                events = await store.take_events(conn, EVENT_BATCH)
                if not events:
                    return 0
                await _Evaluator(conn, self._settings.public_url, self._now()).apply(events)
                await store.delete_events(conn, [e["id"] for e in events])
        except IntegrityError:
            # Another dispatcher opened the same incident first: redo this batch next pass.
            logger.info("alert facts raced with another dispatcher; retrying")
            return 0
        return len(events)

    # -- sending -----------------------------------------------------------------------------

    async def send_due(self) -> int:
        now = self._now()
        async with self._db.connect() as conn:
            if await conn.scalar(store.HAS_DUE_DELIVERIES, {"now": now}) is None:
                return 0
        async with self._db.begin() as conn:
            claimed = await store.claim_deliveries(conn, now, DELIVERY_BATCH, CLAIM_LOCK)
            channels = await store.load_channels(conn, {d["channel_id"] for d in claimed})
        if not claimed:
            return 0
        by_channel: dict[str, list[RowMapping]] = {}
        for delivery in claimed:
            by_channel.setdefault(delivery["channel_id"], []).append(delivery)
        await asyncio.gather(
            *(self._send_channel(channels.get(cid), rows) for cid, rows in by_channel.items())
        )
        return len(claimed)

    async def _send_channel(self, channel: RowMapping | None, rows: Sequence[RowMapping]) -> None:
        """One channel's deliveries in order, within its rate limit."""
        if channel is None:
            return  # deleted meanwhile: its deliveries went with it
        try:
            target = target_from_row(channel, self._box)
        except Exception as exc:
            for row in rows:
                await self._record(row, DeliveryFailed(f"channel unusable: {exc}", retryable=False))
            return
        async with self._db.connect() as conn:
            recent = await store.delivered_since(conn, channel["id"], self._now() - RATE_WINDOW)
        limit = channel["rate_limit_per_minute"]
        for row in rows:
            if not channel["enabled"]:
                await self._record(row, DeliveryFailed("channel disabled", retryable=False))
                continue
            if len(recent) >= limit:
                await self._defer(row, recent[-limit] + RATE_WINDOW, limit)
                continue
            message = AlertMessage(row["subject"], row["text"], dict(row["payload"]))
            try:
                await self._sender.send(target, message)
            except DeliveryFailed as failure:
                await self._record(row, failure)
                continue
            except Exception as exc:  # a bug must not stop the other deliveries
                logger.exception("alert delivery %s crashed", row["id"])
                await self._record(row, DeliveryFailed(type(exc).__name__, retryable=True))
                continue
            recent.append(self._now())
            await self._record(row, None)

    async def _defer(self, row: RowMapping, until: datetime, limit: int) -> None:
        async with self._db.begin() as conn:
            await store.finish_delivery(
                conn,
                row["id"],
                {
                    "next_attempt_at": max(until, self._now()),
                    "last_error": f"waiting: channel rate limit ({limit} per minute)",
                },
            )

    async def _record(self, row: RowMapping, failure: DeliveryFailed | None) -> None:
        now = self._now()
        attempts = row["attempts"] + 1
        values: dict[str, Any] = {"attempts": attempts}
        if failure is None:
            values.update(status=store.DELIVERED, delivered_at=now)
            logger.info(
                "alert delivery %s (%s) sent to channel %s after %d attempt(s)",
                row["id"],
                row["event"],
                row["channel_id"],
                attempts,
            )
        else:
            values["last_error"] = failure.message
            if failure.retryable and attempts < self._settings.max_attempts:
                delay = retry_delay_ms(attempts, self._settings, self._rng)
                values["next_attempt_at"] = now + timedelta(milliseconds=delay)
            else:
                values["status"] = store.FAILED
            logger.warning(
                "alert delivery %s to channel %s failed (attempt %d): %s",
                row["id"],
                row["channel_id"],
                attempts,
                failure.message,
            )
        async with self._db.begin() as conn:
            await store.finish_delivery(conn, row["id"], values)


class _Evaluator:
    """Applies a batch of queued facts, in order, within one transaction."""

    def __init__(self, conn: AsyncConnection, public_url: str | None, now: datetime) -> None:
        self._conn = conn
        self._public_url = public_url
        self._now = now
        self._deliveries: list[dict[str, Any]] = []

    async def apply(self, events: Sequence[RowMapping]) -> None:
        conn = self._conn
        jobs = await store.load_jobs(conn, {e["job_id"] for e in events})
        by_job, by_tenant = await store.load_rules(conn, jobs.values())
        channels = await store.enabled_channels(conn, {j.tenant_id for j in jobs.values()})
        incidents = await store.open_incidents(conn, jobs)
        for event in events:
            job = jobs.get(event["job_id"])
            if job is None:
                continue
            rule = by_job.get(job.id) or by_tenant.get(job.tenant_id) or DEFAULT_RULE
            targets = rule_channels(rule, channels.get(job.tenant_id, []))
            facts = RunFacts.from_json(event["facts"])
            await self._apply_one(job, event["run_id"], facts, rule, targets, incidents)
        await store.insert_deliveries(conn, self._deliveries)

    async def _apply_one(
        self,
        job: store.JobInfo,
        run_id: str | None,
        facts: RunFacts,
        rule: AlertRule,
        targets: list[str],
        incidents: dict[str, dict[AlertKind, store.OpenIncident]],
    ) -> None:
        open_now = incidents.setdefault(job.id, {})
        result = evaluate(facts, rule, set(open_now))
        for kind in result.opened:
            view = await self._open(job, run_id, kind, facts)
            open_now[kind] = store.OpenIncident(view.id, view.since, view.occurrences)
            self._queue(job.tenant_id, view, incident_message(view, self._public_url), targets)
        for kind in result.still_firing:
            incident = open_now[kind]
            incident.occurrences += 1
            await store.update_incident(
                self._conn,
                incident.id,
                {
                    "occurrences": incident.occurrences,
                    "last_seen_at": facts.finished_at,
                    "last_error": facts.error,
                    "last_run_id": run_id,
                },
            )
        for kind in result.resolved:
            closed = open_now.pop(kind)
            await store.update_incident(
                self._conn, closed.id, {"status": store.RESOLVED, "resolved_at": facts.finished_at}
            )
            if rule.on_recovery and kind in RECOVERABLE:
                view = IncidentView(
                    id=closed.id,
                    kind=kind,
                    job_id=job.id,
                    job_name=job.name,
                    since=closed.since,
                    occurrences=closed.occurrences,
                    resolved_at=facts.finished_at,
                )
                self._queue(job.tenant_id, view, recovery_message(view, self._public_url), targets)

    async def _open(
        self, job: store.JobInfo, run_id: str | None, kind: AlertKind, facts: RunFacts
    ) -> IncidentView:
        since = facts.finished_at
        occurrences = 1
        if kind is AlertKind.FAILING:
            occurrences = max(facts.consecutive_failures, 1)
            start = await store.failure_streak_start(self._conn, job.id, facts.finished_at)
            since = min(start, since) if start is not None else since
        details = "\n".join(facts.notify) if kind is AlertKind.NOTIFY_USER else None
        view = IncidentView(
            id=str(uuid.uuid4()),
            kind=kind,
            job_id=job.id,
            job_name=job.name,
            since=since,
            occurrences=occurrences,
            last_error=facts.error,
            details=details,
        )
        await store.insert_incident(
            self._conn,
            {
                "id": view.id,
                "tenant_id": job.tenant_id,
                "job_id": job.id,
                "kind": kind.value,
                "status": store.OPEN,
                "since": since,
                "opened_at": facts.finished_at,
                "last_seen_at": facts.finished_at,
                "occurrences": occurrences,
                "last_error": facts.error,
                "details": details,
                "last_run_id": run_id,
            },
        )
        return view

    def _queue(
        self, tenant_id: str, view: IncidentView, message: AlertMessage, targets: list[str]
    ) -> None:
        event = DeliveryEvent.RECOVERED if view.resolved_at else DeliveryEvent.OPENED
        for channel_id in targets:
            self._deliveries.append(
                store.delivery_row(
                    delivery_id=str(uuid.uuid4()),
                    tenant_id=tenant_id,
                    alert_id=view.id,
                    channel_id=channel_id,
                    event=event,
                    subject=message.subject,
                    text=message.text,
                    payload=message.payload,
                    now=self._now,
                )
            )
