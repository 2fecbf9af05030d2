"""Sending one alert message to one channel: a signed JSON webhook, a Slack-compatible
incoming webhook (`{"text": …}`) or an email over SMTP with STARTTLS.

HTTP deliveries go through the endpoint executor's SSRF guard (`HostPolicy` +
`GuardedResolver`): the address that was checked is the address that is dialled, literal IPs
are checked before the request, redirects are not followed, and no proxy from the environment
is used. Error texts name the host and port at most, never the URL's path or query (a Slack
URL is its own credential) and never the signing secret.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp
import aiosmtplib
from yarl import URL

from cronicorn.alerting.config import AlertSettings
from cronicorn.domain.alerts import AlertMessage, ChannelKind
from cronicorn.domain.signing import signature_headers
from cronicorn.executor.ssrf import (
    GuardedResolver,
    HostPolicy,
    Resolver,
    SystemResolver,
    find_ssrf_block,
)
from cronicorn.store.secrets import SecretBox

USER_AGENT = "cronicorn-alerts/1"
MAX_ERROR_BODY_CHARS = 200
RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    """A channel with its secrets decrypted, for the sender only."""

    id: str
    name: str
    kind: ChannelKind
    url: str | None = None
    email_to: tuple[str, ...] = ()
    signing_secret: str | None = None

    def __repr__(self) -> str:  # never print the URL or the secret
        return f"ChannelTarget(id={self.id!r}, kind={self.kind.value!r})"


class DeliveryFailed(Exception):
    """One attempt failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def target_from_row(row: Mapping[Any, Any], box: SecretBox) -> ChannelTarget:
    """A stored channel with its URL and secret decrypted (and so registered with the log
    redaction before anything can print them)."""
    return ChannelTarget(
        id=row["id"],
        name=row["name"],
        kind=ChannelKind(row["kind"]),
        url=box.decrypt(row["url"]) if row["url"] else None,
        email_to=tuple(row["email_to"] or ()),
        signing_secret=box.decrypt(row["signing_secret"]) if row["signing_secret"] else None,
    )


def host_policy(settings: AlertSettings) -> HostPolicy:
    """The same allow switches as endpoint calls (`CRONICORN_ALLOW_PRIVATE_NETWORKS`,
    `CRONICORN_ALLOWED_HOSTS`)."""
    return HostPolicy(
        allow_private_networks=settings.allow_private_networks,
        allowed_hosts=settings.allowed_hosts,
    )


def webhook_body(message: AlertMessage) -> bytes:
    return json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()


def slack_body(message: AlertMessage) -> bytes:
    return json.dumps({"text": message.text}, ensure_ascii=False).encode()


class AlertSender:
    """Sends messages; one per process (it owns an aiohttp session). `close()` at the end."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        resolver: Resolver | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._policy = host_policy(settings)
        self._resolver: Resolver = resolver or SystemResolver()
        self._time = wall_clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, target: ChannelTarget, message: AlertMessage) -> None:
        """Deliver or raise `DeliveryFailed`."""
        if target.kind is ChannelKind.EMAIL:
            await self._email(target, message)
        elif target.kind is ChannelKind.SLACK:
            await self._post(target, slack_body(message))
        else:
            await self._post(target, webhook_body(message))

    # -- HTTP -------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=20, resolver=GuardedResolver(self._resolver, self._policy)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # an environment proxy would bypass the SSRF guard
            )
        return self._session

    async def _post(self, target: ChannelTarget, body: bytes) -> None:
        if not target.url:
            raise DeliveryFailed("channel has no URL", retryable=False)
        url = URL(target.url)
        where = f"{url.host}:{url.port}"
        refusal = self._policy.check_url(url)
        if refusal is not None:
            raise DeliveryFailed(f"blocked destination: {refusal}", retryable=False)
        headers = {"Content-Type": "application/json"}
        if target.signing_secret:
            headers.update(signature_headers(target.signing_secret, int(self._time()), body))
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_ms / 1000)
        try:
            async with self._get_session().post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return
                text = (await resp.text(errors="replace"))[:MAX_ERROR_BODY_CHARS].strip()
                detail = f"HTTP {resp.status}" + (f": {text}" if text else "")
                retryable = resp.status >= 500 or resp.status in RETRYABLE_STATUS
                raise DeliveryFailed(detail, retryable=retryable)
        except DeliveryFailed:
            raise
        except TimeoutError:
            raise DeliveryFailed(
                f"{where}: no answer within {self._settings.timeout_ms} ms", retryable=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            blocked = find_ssrf_block(exc)
            if blocked is not None:
                raise DeliveryFailed(str(blocked), retryable=False) from None
            raise DeliveryFailed(f"{where}: {_network_reason(exc)}", retryable=True) from None

    # -- SMTP -------------------------------------------------------------------------------

    async def _email(self, target: ChannelTarget, message: AlertMessage) -> None:
        smtp = self._settings.smtp
        if not smtp.host:
            raise DeliveryFailed("SMTP is not configured (CRONICORN_SMTP_HOST)", retryable=False)
        mail = EmailMessage()
        mail["From"] = smtp.from_addr
        mail["To"] = ", ".join(target.email_to)
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(self._time(), usegmt=True)
        mail["Message-ID"] = make_msgid(domain=smtp.from_addr.rpartition("@")[2] or None)
        mail.set_content(message.text)
        context = ssl.create_default_context(cafile=smtp.ca_file) if smtp.ca_file else None
        try:
            await aiosmtplib.send(
                mail,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                start_tls=smtp.starttls,
                tls_context=context,
                timeout=smtp.timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.code < 500
            raise DeliveryFailed(f"SMTP {exc.code}: {exc.message}", retryable=retryable) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            where = f"{smtp.host}:{smtp.port}"
            raise DeliveryFailed(f"SMTP {where}: {_network_reason(exc)}", retryable=True) from None


def _network_reason(exc: BaseException) -> str:
    """A short reason without URLs: the OS error when there is one, else the type."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, aiosmtplib.SMTPException):
        return exc.message
    return type(exc).__name__
