"""Alert channels: create (the webhook signing secret shown once), list, read, update,
delete, rotate the secret, send a test; a channel's delivery log.

A channel URL is checked like an endpoint's: `check_url` (http/https, a host) when the
request is parsed, then the SSRF guard's own `HostPolicy.check_url` here (literal private
addresses are refused unless allow-listed); host names are checked again after DNS
resolution at every delivery, where the connection is made. URLs (a Slack URL is its own
credential) and signing secrets are stored encrypted and never returned.
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
    ChannelKind,
    DeliveryEvent,
    test_message,
)
from cronicorn.errors import NotFoundError
from cronicorn.observability.redaction import MASK
from cronicorn.service.alert_schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    SigningSecretOut,
)
from cronicorn.service.common import MAX_PAGE
from cronicorn.service.errors import FieldErrors
from cronicorn.service.keys import Principal
from cronicorn.service.validation import plausible_id
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import (
    AlertChannel,
    AlertDelivery,
    utcnow,
)

SECRET_PREFIX = "whsec_"
MAX_CHANNELS_PER_TENANT = 100


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def url_display(url: str) -> str:
    """What the API shows of a channel URL: scheme, host and explicit port."""
    parsed = URL(url)
    host = parsed.raw_host or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{host}{port}/{MASK}"


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


async def list_deliveries(
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


class AlertChannels:
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

    async def channel_deliveries(
        self, principal: Principal, channel_id: str, limit: int = 100
    ) -> list[DeliveryOut]:
        """A channel's deliveries (test messages included), newest first."""
        async with self._sessions() as session:
            await self._load_channel(session, principal, channel_id)
            rows = await list_deliveries(
                session, AlertDelivery.channel_id == channel_id, newest_first=True, limit=limit
            )
            return rows
