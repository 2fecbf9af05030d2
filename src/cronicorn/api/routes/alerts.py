"""Alerts: channels (`/api/alerts/channels`), rules (`/api/alerts/rules/default`,
`/api/jobs/{id}/alert-rule`), incidents and their delivery log (`/api/alerts`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import After, AscendingLimit, Before, Limit
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

router = APIRouter(tags=["alerts"], responses=error_responses(401, 403, 404, 413, 422))


@router.post("/api/alerts/channels", status_code=201, response_model=ChannelCreated)
async def create_channel(body: ChannelCreate, principal: UserKey, svc: Svc) -> ChannelCreated:
    """Add a channel. The URL is stored encrypted and shown as `https://host/***`; a webhook
    channel's `signing_secret` appears in this response only. A URL on a private address is
    refused like an endpoint's (unless allow-listed)."""
    return await svc.alert_channels.create_channel(principal, body)


@router.get("/api/alerts/channels", response_model=list[ChannelOut])
async def list_channels(
    principal: UserKey, svc: Svc, limit: Limit = 100, before: Before = None
) -> list[ChannelOut]:
    return await svc.alert_channels.list_channels(principal, limit=limit, before=before)


@router.get("/api/alerts/channels/{channel_id}", response_model=ChannelOut)
async def get_channel(channel_id: str, principal: UserKey, svc: Svc) -> ChannelOut:
    return await svc.alert_channels.get_channel(principal, channel_id)


@router.patch("/api/alerts/channels/{channel_id}", response_model=ChannelOut)
async def update_channel(
    channel_id: str, body: ChannelUpdate, principal: UserKey, svc: Svc
) -> ChannelOut:
    return await svc.alert_channels.update_channel(principal, channel_id, body)


@router.delete("/api/alerts/channels/{channel_id}", status_code=204)
async def delete_channel(channel_id: str, principal: UserKey, svc: Svc) -> Response:
    await svc.alert_channels.delete_channel(principal, channel_id)
    return Response(status_code=204)


@router.post("/api/alerts/channels/{channel_id}/rotate-secret", response_model=SigningSecretOut)
async def rotate_secret(channel_id: str, principal: UserKey, svc: Svc) -> SigningSecretOut:
    """A new signing secret for a webhook channel, shown only in this response."""
    return await svc.alert_channels.rotate_secret(principal, channel_id)


@router.post("/api/alerts/channels/{channel_ref}/test", response_model=DeliveryOut)
async def test_channel(channel_ref: str, principal: UserKey, svc: Svc) -> DeliveryOut:
    """Send a test message now (one attempt; the result is in the response and the
    channel's delivery log). `channel_ref`: the channel's id or name."""
    return await svc.alert_channels.test_channel(principal, channel_ref)


@router.get("/api/alerts/channels/{channel_id}/deliveries", response_model=list[DeliveryOut])
async def channel_deliveries(
    channel_id: str, principal: UserKey, svc: Svc, limit: Limit = 100
) -> list[DeliveryOut]:
    """The channel's deliveries, test messages included, newest first."""
    return await svc.alert_channels.channel_deliveries(principal, channel_id, limit)


@router.get("/api/alerts/rules/default", response_model=RuleOut)
async def get_default_rule(principal: UserKey, svc: Svc) -> RuleOut:
    """The tenant's default rule (or the built-in one), used by jobs without their own."""
    return await svc.alerts.get_rule(principal)


@router.put("/api/alerts/rules/default", response_model=RuleOut)
async def put_default_rule(body: RuleIn, principal: UserKey, svc: Svc) -> RuleOut:
    return await svc.alerts.put_rule(principal, body)


@router.delete("/api/alerts/rules/default", response_model=RuleOut)
async def delete_default_rule(principal: UserKey, svc: Svc) -> RuleOut:
    """Back to the built-in default; returns the rule now in effect."""
    return await svc.alerts.delete_rule(principal)


@router.get("/api/jobs/{job_id}/alert-rule", response_model=RuleOut)
async def get_job_rule(job_id: str, principal: UserKey, svc: Svc) -> RuleOut:
    """The rule in effect for the job (`scope` says whether it is the job's own)."""
    return await svc.alerts.get_rule(principal, job_id)


@router.put("/api/jobs/{job_id}/alert-rule", response_model=RuleOut)
async def put_job_rule(job_id: str, body: RuleIn, principal: UserKey, svc: Svc) -> RuleOut:
    """Set the job's own rule; it replaces the tenant default for this job."""
    return await svc.alerts.put_rule(principal, body, job_id)


@router.delete("/api/jobs/{job_id}/alert-rule", response_model=RuleOut)
async def delete_job_rule(job_id: str, principal: UserKey, svc: Svc) -> RuleOut:
    return await svc.alerts.delete_rule(principal, job_id)


@router.get("/api/alerts", response_model=list[AlertOut])
async def list_alerts(
    principal: UserKey,
    svc: Svc,
    job_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Only this job's.")
    ] = None,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Limit = 100,
    before: Before = None,
) -> list[AlertOut]:
    """Incidents, newest first."""
    return await svc.alerts.list_alerts(
        principal, job_id=job_id, status=status, limit=limit, before=before
    )


@router.get("/api/alerts/{alert_id}", response_model=AlertOut)
async def get_alert(alert_id: str, principal: UserKey, svc: Svc) -> AlertOut:
    return await svc.alerts.get_alert(principal, alert_id)


@router.get("/api/alerts/{alert_id}/deliveries", response_model=list[DeliveryOut])
async def alert_deliveries(
    alert_id: str, principal: UserKey, svc: Svc, limit: AscendingLimit = 100, after: After = None
) -> list[DeliveryOut]:
    """The incident's delivery log, oldest first: one entry per channel and message (opened,
    recovered), with status, attempts and the last error. Pass the last delivery's id as
    `after` for the next page."""
    return await svc.alerts.deliveries(principal, alert_id, limit, after)
