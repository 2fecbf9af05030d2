"""Alerts for users: channels (with their secrets kept encrypted), rules per job and tenant
default, incidents and each incident's delivery log, and test messages.

A channel URL is checked like an endpoint's: `check_url` (http/https, a host) when the
request is parsed, then the SSRF guard's own `HostPolicy.check_url` here (literal private
addresses are refused unless allow-listed); host names are checked again after DNS
resolution at every delivery, where the connection is made.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from yarl import URL

from cronicorn.alerting.config import AlertSettings
from cronicorn.alerting.senders import AlertSender, DeliveryFailed, host_policy, target_from_row
from cronicorn.domain.alerts import (
    DEFAULT_RULE,
    AlertRule,
    ChannelKind,
    DeliveryEvent,
    test_message,
)
from cronicorn.errors import NotFoundError
from cronicorn.service.alert_schemas import (
    AlertOut,
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    RuleIn,
    RuleOut,
    SigningSecretOut,
)
from cronicorn.service.common import MAX_PAGE, load_job
from cronicorn.service.errors import FieldErrors
from cronicorn.service.keys import Principal
from cronicorn.service.validation import plausible_id
from cronicorn.store.secrets import MASK, SecretBox
from cronicorn.store.tables import (
    Alert,
    AlertChannel,
    AlertDelivery,
    Job,
    utcnow,
)
from cronicorn.store.tables import AlertRule as AlertRuleRow

SECRET_PREFIX = "whsec_"
MAX_CHANNELS_PER_TENANT = 100


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def url_display(url: str) -> str:
    """What the API shows of a channel URL: scheme, host and explicit port."""
    parsed = URL(url)
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{parsed.raw_host}{port}/{MASK}"


def channel_out(row: AlertChannel) -> ChannelOut:
    return ChannelOut(
        id=row.id,
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        url=row.url_display,
        email_to=row.email_to,
        enabled=row.enabled,
        rate_limit_per_minute=row.rate_limit_per_minute,
        signing_secret=MASK if row.signing_secret else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


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


def _rule(row: AlertRuleRow) -> AlertRule:
    return AlertRule(
        failure_threshold=row.failure_threshold,
        on_critical=row.on_critical,
        on_recovery=row.on_recovery,
        on_notify_user=row.on_notify_user,
        on_ai_pause=row.on_ai_pause,
        on_budget=row.on_budget,
        channel_ids=tuple(row.channel_ids) if row.channel_ids is not None else None,
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


def delivery_out(row: AlertDelivery, channel_name: str) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        alert_id=row.alert_id,
        channel_id=row.channel_id,
        channel_name=channel_name,
        event=row.event,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


class Alerts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        settings: AlertSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._settings = settings or AlertSettings()
        self._policy = host_policy(self._settings)
        self._now = clock

    # -- channels ----------------------------------------------------------------------------

    def _check_url(self, url: str) -> None:
        refusal = self._policy.check_url(URL(url))
        if refusal is not None:
            raise FieldErrors([("url", f"blocked destination: {refusal}")])

    async def _load_channel(
        self, session: AsyncSession, principal: Principal, ref: str, *, by_name: bool = False
    ) -> AlertChannel:
        if not by_name and not plausible_id(ref):
            raise NotFoundError("channel", ref)
        match = AlertChannel.name == ref if by_name else AlertChannel.id == ref
        stmt = sa.select(AlertChannel).where(match)
        if not principal.sees_all_tenants or by_name:
            stmt = stmt.where(AlertChannel.tenant_id == principal.tenant_id)
        row = (await session.scalars(stmt.order_by(AlertChannel.created_at).limit(1))).first()
        if row is None:
            raise NotFoundError("channel", ref)
        return row

    async def create_channel(self, principal: Principal, data: ChannelCreate) -> ChannelCreated:
        kind = ChannelKind(data.kind)
        if data.url is not None:
            self._check_url(data.url)
        if kind is ChannelKind.EMAIL and not self._settings.smtp.host:
            raise FieldErrors([("kind", "email channels need CRONICORN_SMTP_HOST on the server")])
        secret = new_signing_secret() if kind is ChannelKind.WEBHOOK else None
        now = self._now()
        async with self._sessions() as session, session.begin():
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(AlertChannel)
                .where(AlertChannel.tenant_id == principal.tenant_id)
            )
            if (count or 0) >= MAX_CHANNELS_PER_TENANT:
                raise FieldErrors([("name", f"at most {MAX_CHANNELS_PER_TENANT} channels")])
            row = AlertChannel(
                id=str(uuid.uuid4()),
                tenant_id=principal.tenant_id,
                name=data.name,
                kind=kind.value,
                url=self._box.encrypt(data.url) if data.url else None,
                url_display=url_display(data.url) if data.url else None,
                email_to=data.email_to,
                signing_secret=self._box.encrypt(secret) if secret else None,
                enabled=data.enabled,
                rate_limit_per_minute=data.rate_limit_per_minute,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        out = channel_out(row).model_dump()
        out["signing_secret"] = secret
        return ChannelCreated.model_validate(out)

    async def list_channels(
        self, principal: Principal, limit: int = 100, before: str | None = None
    ) -> list[ChannelOut]:
        async with self._sessions() as session:
            stmt = sa.select(AlertChannel)
            if not principal.sees_all_tenants:
                stmt = stmt.where(AlertChannel.tenant_id == principal.tenant_id)
            if before is not None:
                cursor = await self._load_channel(session, principal, before)
                stmt = stmt.where(
                    sa.or_(
                        AlertChannel.created_at < cursor.created_at,
                        sa.and_(
                            AlertChannel.created_at == cursor.created_at,
                            AlertChannel.id < cursor.id,
                        ),
                    )
                )
            stmt = stmt.order_by(AlertChannel.created_at.desc(), AlertChannel.id.desc())
            rows = await session.scalars(stmt.limit(min(max(limit, 1), MAX_PAGE)))
            return [channel_out(row) for row in rows]

    async def get_channel(self, principal: Principal, channel_id: str) -> ChannelOut:
        async with self._sessions() as session:
            return channel_out(await self._load_channel(session, principal, channel_id))

    async def update_channel(
        self, principal: Principal, channel_id: str, data: ChannelUpdate
    ) -> ChannelOut:
        given = data.model_fields_set
        for name in given & {"name", "url", "email_to", "enabled", "rate_limit_per_minute"}:
            if getattr(data, name) is None:
                raise FieldErrors([(name, f"{name} may not be null")])
        async with self._sessions() as session, session.begin():
            row = await self._load_channel(session, principal, channel_id)
            kind = ChannelKind(row.kind)
            if "url" in given:
                if kind is ChannelKind.EMAIL:
                    raise FieldErrors([("url", "an email channel has no url")])
                assert data.url is not None
                self._check_url(data.url)
                row.url = self._box.encrypt(data.url)
                row.url_display = url_display(data.url)
            if "email_to" in given:
                if kind is not ChannelKind.EMAIL:
                    raise FieldErrors([("email_to", f"a {kind.value} channel has no email_to")])
                row.email_to = data.email_to
            for name in given & {"name", "enabled", "rate_limit_per_minute"}:
                setattr(row, name, getattr(data, name))
            row.updated_at = self._now()
        return channel_out(row)

    async def delete_channel(self, principal: Principal, channel_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.delete(await self._load_channel(session, principal, channel_id))

    async def rotate_secret(self, principal: Principal, channel_id: str) -> SigningSecretOut:
        secret = new_signing_secret()
        async with self._sessions() as session, session.begin():
            row = await self._load_channel(session, principal, channel_id)
            if row.kind != ChannelKind.WEBHOOK.value:
                raise FieldErrors([("kind", "only webhook channels sign their calls")])
            row.signing_secret = self._box.encrypt(secret)
            row.updated_at = self._now()
        return SigningSecretOut(signing_secret=secret)

    async def test_channel(
        self, principal: Principal, ref: str, sender: AlertSender | None = None
    ) -> DeliveryOut:
        """Send a test message now (one attempt, no retries), recorded in the delivery log.
        `ref` is the channel's id or its name."""
        async with self._sessions() as session:
            try:
                row = await self._load_channel(session, principal, ref)
            except NotFoundError:
                row = await self._load_channel(session, principal, ref, by_name=True)
            channel_row = {c.name: getattr(row, c.name) for c in AlertChannel.__table__.columns}
        now = self._now()
        message = test_message(row.name, now)
        own = sender is None
        sender = sender or AlertSender(self._settings)
        error: str | None = None
        try:
            await sender.send(target_from_row(channel_row, self._box), message)
        except DeliveryFailed as failure:
            error = failure.message
        finally:
            if own:
                await sender.close()
        delivery = AlertDelivery(
            id=str(uuid.uuid4()),
            tenant_id=row.tenant_id,
            alert_id=None,
            channel_id=row.id,
            event=DeliveryEvent.TEST.value,
            status="failed" if error else "delivered",
            attempts=1,
            last_error=error,
            next_attempt_at=now,
            subject=message.subject,
            text=message.text,
            payload=message.payload,
            created_at=now,
            delivered_at=None if error else self._now(),
        )
        async with self._sessions() as session, session.begin():
            session.add(delivery)
        return delivery_out(delivery, row.name)

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
                    return rule_out("job", job_id, _rule(own), own)
            default = await self._rule_row(session, tenant_id, None)
            if default is not None:
                return rule_out("tenant", job_id, _rule(default), default)
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
        return rule_out("job" if job_id else "tenant", job_id, _rule(row), row)

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

    async def deliveries(self, principal: Principal, alert_id: str) -> list[DeliveryOut]:
        """An incident's delivery log, oldest first."""
        async with self._sessions() as session:
            await self._load_alert(session, principal, alert_id)
            return await self._deliveries(session, AlertDelivery.alert_id == alert_id)

    async def channel_deliveries(
        self, principal: Principal, channel_id: str, limit: int = 100
    ) -> list[DeliveryOut]:
        """A channel's deliveries (test messages included), newest first."""
        async with self._sessions() as session:
            await self._load_channel(session, principal, channel_id)
            rows = await self._deliveries(
                session, AlertDelivery.channel_id == channel_id, newest_first=True, limit=limit
            )
            return rows

    async def _deliveries(
        self,
        session: AsyncSession,
        where: sa.ColumnElement[bool],
        *,
        newest_first: bool = False,
        limit: int = MAX_PAGE,
    ) -> list[DeliveryOut]:
        order = (
            (AlertDelivery.created_at.desc(), AlertDelivery.id.desc())
            if newest_first
            else (AlertDelivery.created_at, AlertDelivery.id)
        )
        stmt = (
            sa.select(AlertDelivery, AlertChannel.name)
            .join(AlertChannel, AlertChannel.id == AlertDelivery.channel_id)
            .where(where)
            .order_by(*order)
            .limit(min(max(limit, 1), MAX_PAGE))
        )
        rows = await session.execute(stmt)
        return [delivery_out(d, name) for d, name in rows]
