"""A job's history: messages (read/post), runs with their results, recorded errors.

Lists are newest first and keyset-paginated: pass the last id you saw as `before`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.models import MessageSource
from cronicorn.errors import NotFoundError
from cronicorn.service.common import load_job, page, refuse_archived, visible
from cronicorn.service.errors import FieldErrors
from cronicorn.service.keys import Principal
from cronicorn.service.quotas import Quotas
from cronicorn.service.schemas import (
    EndpointResultOut,
    JobErrorOut,
    MessageCreate,
    MessageOut,
    RunDetail,
    RunOut,
    RunSchedule,
    RunTokens,
)
from cronicorn.service.validation import plausible_id
from cronicorn.store.tables import EndpointResult, Job, JobError, Message, Run, utcnow

Model = type[Message] | type[Run] | type[JobError]


class History:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        quotas: Quotas = Quotas(),
    ) -> None:
        self._sessions = sessions
        self._now = clock
        self._quotas = quotas

    async def post_message(
        self, principal: Principal, job_id: str, data: MessageCreate
    ) -> MessageOut:
        size = len(data.content.encode())
        if size > self._quotas.message_bytes:
            raise FieldErrors(
                [("content", f"is {size} bytes; the limit is {self._quotas.message_bytes}")]
            )
        async with self._sessions() as session, session.begin():
            refuse_archived(await load_job(session, principal, job_id, for_update=True))
            await self._make_room(session, job_id)
            row = Message(
                id=str(uuid.uuid4()),
                job_id=job_id,
                role=data.role,
                content=data.content,
                source=MessageSource.USER.value,
                created_at=self._now(),
            )
            session.add(row)
        return message_out(row)

    async def _make_room(self, session: AsyncSession, job_id: str) -> None:
        """Delete the oldest messages so one more fits within `messages_per_job` (the caller
        holds the job's row lock)."""
        keep = self._quotas.messages_per_job - 1
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Message).where(Message.job_id == job_id)
        )
        excess = (count or 0) - keep
        if excess <= 0:
            return
        oldest = (
            sa.select(Message.id)
            .where(Message.job_id == job_id)
            .order_by(Message.created_at, Message.id)
            .limit(excess)
        )
        await session.execute(sa.delete(Message).where(Message.id.in_(oldest.scalar_subquery())))

    async def messages(
        self, principal: Principal, job_id: str, limit: int = 100, before: str | None = None
    ) -> list[MessageOut]:
        rows = await self._page(principal, job_id, Message, Message.created_at, limit, before)
        return [message_out(row) for row in rows]

    async def runs(
        self, principal: Principal, job_id: str, limit: int = 50, before: str | None = None
    ) -> list[RunOut]:
        rows = await self._page(principal, job_id, Run, Run.started_at, limit, before)
        return [RunOut(**run_fields(row)) for row in rows]

    async def errors(
        self, principal: Principal, job_id: str, limit: int = 100, before: str | None = None
    ) -> list[JobErrorOut]:
        rows = await self._page(principal, job_id, JobError, JobError.created_at, limit, before)
        return [JobErrorOut.model_validate(row, from_attributes=True) for row in rows]

    async def run(self, principal: Principal, run_id: str) -> RunDetail:
        if not plausible_id(run_id):
            raise NotFoundError("run", run_id)
        async with self._sessions() as session:
            stmt = visible(
                principal, sa.select(Run).join(Job, Job.id == Run.job_id).where(Run.id == run_id)
            )
            run = await session.scalar(stmt)
            if run is None:
                raise NotFoundError("run", run_id)
            results = await session.scalars(
                sa.select(EndpointResult)
                .where(EndpointResult.run_id == run_id)
                .order_by(EndpointResult.position, EndpointResult.id)
            )
            return RunDetail(
                **run_fields(run),
                results=[
                    EndpointResultOut.model_validate(r, from_attributes=True) for r in results
                ],
            )

    async def _page(
        self,
        principal: Principal,
        job_id: str,
        model: Model,
        ts_col: Any,
        limit: int,
        before: str | None,
    ) -> list[Any]:
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            base = sa.select(model).where(model.job_id == job_id)
            cursor = None
            if before is not None:
                ref: Any = await session.scalar(base.where(model.id == before))
                if ref is None:
                    raise FieldErrors([("before", f"unknown id for this job: {before}")], "query")
                cursor = (getattr(ref, ts_col.key), ref.id)
            return list(await session.scalars(page(base, ts_col, model.id, cursor, limit)))


def message_out(row: Message) -> MessageOut:
    return MessageOut.model_validate(row, from_attributes=True)


def run_fields(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_id": run.job_id,
        "worker_id": run.worker_id,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "plan": run.plan,
        "plan_source": run.plan_source,
        "strategy": run.strategy,
        "success_count": run.success_count,
        "failure_count": run.failure_count,
        "skipped_count": run.skipped_count,
        "aborted_count": run.aborted_count,
        "escalation_level": run.escalation_level,
        "schedule": RunSchedule.model_validate(run.schedule) if run.schedule else None,
        "tokens": RunTokens(
            input=run.input_tokens,
            output=run.output_tokens,
            reasoning=run.reasoning_tokens,
            cached=run.cached_input_tokens,
        ),
        "ai_calls": run.ai_calls,
        "ai_trigger": run.ai_trigger,
        "cost_usd": run.cost_usd,
        "error": run.error,
    }
