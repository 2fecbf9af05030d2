"""Alert rules (per job, tenant default, built-in) and incidents with their delivery log.

Channels live in `cronicorn.service.alert_channels`; what fires when, in
`cronicorn.domain.alerts`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.alerts import (
    DEFAULT_RULE,
    AlertRule,
)
from cronicorn.errors import NotFoundError
from cronicorn.service.alert_channels import list_deliveries
from cronicorn.service.alert_schemas import (
    AlertOut,
    DeliveryOut,
    RuleIn,
    RuleOut,
)
from cronicorn.service.common import MAX_PAGE, load_job
from cronicorn.service.errors import FieldErrors
from cronicorn.service.keys import Principal
from cronicorn.service.validation import plausible_id
from cronicorn.store.alerts import rule_from_row
from cronicorn.store.tables import (
    Alert,
    AlertChannel,
    AlertDelivery,
    Job,
    utcnow,
)
from cronicorn.store.tables import AlertRule as AlertRuleRow


def rule_out(scope: str, job_id: str | None, rule: AlertRule, row: AlertRuleRow | None) -> RuleOut:
    return RuleOut(
        scope=scope,  # type: ignore[arg-type]
        job_id=job_id,
        failure_threshold=rule.failure_threshold,
        on_critical=rule.on_critical,
        on_recovery=rule.on_recovery,
        on_notify_user=rule.on_notify_user,
        on_ai_pause=rule.on_ai_pause,
        on_budget=rule.on_budget,
        channel_ids=list(rule.channel_ids) if rule.channel_ids is not None else None,
        updated_at=row.updated_at if row is not None else None,
    )


def alert_out(row: Alert, job_name: str) -> AlertOut:
    return AlertOut(
        id=row.id,
        job_id=row.job_id,
        job_name=job_name,
        kind=row.kind,
        status=row.status,  # type: ignore[arg-type]
        since=row.since,
        opened_at=row.opened_at,
        last_seen_at=row.last_seen_at,
        resolved_at=row.resolved_at,
        occurrences=row.occurrences,
        last_error=row.last_error,
        details=row.details,
    )


class Alerts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._now = clock

    # -- rules -------------------------------------------------------------------------------

    async def _rule_row(
        self, session: AsyncSession, tenant_id: str, job_id: str | None
    ) -> AlertRuleRow | None:
        stmt = sa.select(AlertRuleRow).where(AlertRuleRow.tenant_id == tenant_id)
        if job_id is None:
            stmt = stmt.where(AlertRuleRow.job_id.is_(None))
        else:
            stmt = stmt.where(AlertRuleRow.job_id == job_id)
        return (await session.scalars(stmt)).first()

    async def get_rule(self, principal: Principal, job_id: str | None = None) -> RuleOut:
        """The effective rule: the job's own, else the tenant default, else built-in."""
        async with self._sessions() as session:
            tenant_id = principal.tenant_id
            if job_id is not None:
                job = await load_job(session, principal, job_id)
                tenant_id = job.tenant_id
                own = await self._rule_row(session, tenant_id, job_id)
                if own is not None:
                    return rule_out("job", job_id, rule_from_row(own), own)
            default = await self._rule_row(session, tenant_id, None)
            if default is not None:
                return rule_out("tenant", job_id, rule_from_row(default), default)
            return rule_out("builtin", job_id, DEFAULT_RULE, None)

    async def put_rule(
        self, principal: Principal, data: RuleIn, job_id: str | None = None
    ) -> RuleOut:
        async with self._sessions() as session, session.begin():
            tenant_id = principal.tenant_id
            if job_id is not None:
                job: Job = await load_job(session, principal, job_id, for_update=True)
                tenant_id = job.tenant_id
            if data.channel_ids is not None:
                await self._check_channels(session, tenant_id, data.channel_ids)
            row = await self._rule_row(session, tenant_id, job_id)
            now = self._now()
            if row is None:
                row = AlertRuleRow(
                    id=str(uuid.uuid4()), tenant_id=tenant_id, job_id=job_id, created_at=now
                )
                session.add(row)
            for name, value in data.model_dump().items():
                setattr(row, name, value)
            row.updated_at = now
        return rule_out("job" if job_id else "tenant", job_id, rule_from_row(row), row)

    async def _check_channels(
        self, session: AsyncSession, tenant_id: str, channel_ids: list[str]
    ) -> None:
        found = set(
            await session.scalars(
                sa.select(AlertChannel.id).where(
                    AlertChannel.tenant_id == tenant_id,
                    AlertChannel.id.in_([c for c in channel_ids if plausible_id(c)]),
                )
            )
        )
        missing = [c for c in channel_ids if c not in found]
        if missing:
            raise FieldErrors([("channel_ids", f"unknown channel {missing[0][:64]!r}")])

    async def delete_rule(self, principal: Principal, job_id: str | None = None) -> RuleOut:
        """Remove the job's rule (or the tenant default); returns the rule now in effect."""
        async with self._sessions() as session, session.begin():
            tenant_id = principal.tenant_id
            if job_id is not None:
                tenant_id = (await load_job(session, principal, job_id)).tenant_id
            row = await self._rule_row(session, tenant_id, job_id)
            if row is not None:
                await session.delete(row)
        return await self.get_rule(principal, job_id)

    # -- incidents and the delivery log ------------------------------------------------------

    def _visible_alerts(self, principal: Principal) -> sa.Select[Alert, str]:
        stmt = sa.select(Alert, Job.name).join(Job, Job.id == Alert.job_id)
        if not principal.sees_all_tenants:
            stmt = stmt.where(Alert.tenant_id == principal.tenant_id)
        return stmt

    async def list_alerts(
        self,
        principal: Principal,
        *,
        job_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[AlertOut]:
        async with self._sessions() as session:
            stmt = self._visible_alerts(principal)
            if job_id is not None:
                await load_job(session, principal, job_id)
                stmt = stmt.where(Alert.job_id == job_id)
            if status is not None:
                stmt = stmt.where(Alert.status == status)
            if before is not None:
                cursor, _ = await self._load_alert(session, principal, before)
                stmt = stmt.where(
                    sa.or_(
                        Alert.opened_at < cursor.opened_at,
                        sa.and_(Alert.opened_at == cursor.opened_at, Alert.id < cursor.id),
                    )
                )
            stmt = stmt.order_by(Alert.opened_at.desc(), Alert.id.desc())
            rows = await session.execute(stmt.limit(min(max(limit, 1), MAX_PAGE)))
            return [alert_out(alert, name) for alert, name in rows]

    async def _load_alert(
        self, session: AsyncSession, principal: Principal, alert_id: str
    ) -> tuple[Alert, str]:
        if not plausible_id(alert_id):
            raise NotFoundError("alert", alert_id)
        row = (
            await session.execute(self._visible_alerts(principal).where(Alert.id == alert_id))
        ).first()
        if row is None:
            raise NotFoundError("alert", alert_id)
        return row[0], row[1]

    async def get_alert(self, principal: Principal, alert_id: str) -> AlertOut:
        async with self._sessions() as session:
            return alert_out(*await self._load_alert(session, principal, alert_id))

    async def deliveries(
        self, principal: Principal, alert_id: str, limit: int = 100, after: str | None = None
    ) -> list[DeliveryOut]:
        """An incident's delivery log, oldest first; pass the last id you saw as `after` for
        the next page."""
        async with self._sessions() as session:
            await self._load_alert(session, principal, alert_id)
            where = AlertDelivery.alert_id == alert_id
            if after is not None:
                ref = await session.scalar(
                    sa.select(AlertDelivery).where(where, AlertDelivery.id == after)
                )
                if ref is None:
                    raise FieldErrors(
                        [("after", f"unknown delivery id for this alert: {after}")], "query"
                    )
                where = sa.and_(
                    where,
                    sa.or_(
                        AlertDelivery.created_at > ref.created_at,
                        sa.and_(
                            AlertDelivery.created_at == ref.created_at,
                            AlertDelivery.id > ref.id,
                        ),
                    ),
                )
            return await list_deliveries(session, where, limit=limit)
