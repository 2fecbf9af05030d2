"""Input and output shapes of alert channels, rules, incidents and deliveries.

Channel secrets (the URL, which for Slack is its own credential, and the webhook signing
secret) are never in an output: the URL shows as `https://host/***`, the secret as `***`.
The one exception is `ChannelCreated.signing_secret`, returned once so the receiver can
verify signatures (like an API key).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, Strict, model_validator

from cronicorn.service.schemas import InputModel, StrictBool
from cronicorn.service.validation import Name, Url

_EMAIL = re.compile(r"^[^@\s<>,;:\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")


def check_email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError(f"{value[:60]!r} is not an email address")
    return value


Email = Annotated[str, Strict(), AfterValidator(check_email)]
Emails = Annotated[list[Email], Field(min_length=1, max_length=20)]
ChannelKindName = Literal["webhook", "slack", "email"]
RatePerMinute = Annotated[int, Strict(), Field(ge=1, le=600)]
Threshold = Annotated[int, Strict(), Field(ge=1, le=10_000)]
ChannelIds = Annotated[list[Annotated[str, Strict(), Field(max_length=64)]], Field(max_length=50)]


class ChannelCreate(InputModel):
    """A webhook or Slack channel needs `url`; an email channel needs `email_to`."""

    name: Name
    kind: ChannelKindName
    url: Url | None = None
    email_to: Emails | None = None
    enabled: StrictBool = True
    rate_limit_per_minute: RatePerMinute = 10

    @model_validator(mode="after")
    def _target_matches_kind(self) -> ChannelCreate:
        if self.kind == "email":
            if self.email_to is None:
                raise ValueError("email_to: an email channel needs email_to")
            if self.url is not None:
                raise ValueError("url: an email channel has no url")
        else:
            if self.url is None:
                raise ValueError(f"url: a {self.kind} channel needs url")
            if self.email_to is not None:
                raise ValueError(f"email_to: a {self.kind} channel has no email_to")
        return self


class ChannelUpdate(InputModel):
    """PATCH: only the given fields change (the kind cannot)."""

    name: Name | None = None
    url: Url | None = None
    email_to: Emails | None = None
    enabled: StrictBool | None = None
    rate_limit_per_minute: RatePerMinute | None = None


class ChannelOut(BaseModel):
    id: str
    name: str
    kind: ChannelKindName
    url: str | None = Field(description="Scheme and host only: `https://hooks.example/***`.")
    email_to: list[str] | None
    enabled: bool
    rate_limit_per_minute: int
    signing_secret: str | None = Field(description='`"***"` when the channel signs its calls.')
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelOut):
    signing_secret: str | None = Field(
        description="Webhook channels: the HMAC key of `X-Cronicorn-Signature`, shown only "
        "in this response."
    )


class SigningSecretOut(BaseModel):
    signing_secret: str = Field(description="The new signing secret, shown only here.")


class RuleIn(InputModel):
    """An alert rule. `channel_ids` null: every enabled channel of the tenant."""

    failure_threshold: Threshold | None = 3
    on_critical: StrictBool = False
    on_recovery: StrictBool = True
    on_notify_user: StrictBool = True
    on_ai_pause: StrictBool = True
    on_budget: StrictBool = True
    channel_ids: ChannelIds | None = None


class RuleOut(BaseModel):
    scope: Literal["job", "tenant", "builtin"] = Field(
        description="Where the effective rule comes from: the job's own, the tenant "
        "default, or the built-in default."
    )
    job_id: str | None
    failure_threshold: int | None
    on_critical: bool
    on_recovery: bool
    on_notify_user: bool
    on_ai_pause: bool
    on_budget: bool
    channel_ids: list[str] | None
    updated_at: datetime | None


class AlertOut(BaseModel):
    """An incident: one open per job and kind until it resolves."""

    id: str
    job_id: str
    job_name: str
    kind: str
    status: Literal["open", "resolved"]
    since: datetime
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    occurrences: int
    last_error: str | None
    details: str | None


class DeliveryOut(BaseModel):
    """One message to one channel: the delivery log."""

    id: str
    alert_id: str | None
    channel_id: str
    channel_name: str
    event: Literal["opened", "recovered", "test"]
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="Pending deliveries: next attempt.")
    created_at: datetime
    delivered_at: datetime | None
