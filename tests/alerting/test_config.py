"""Alert settings from the environment: every variable read, bad values named."""

from __future__ import annotations

import pytest

from cronicorn.alerting.config import alert_settings_from_env
from cronicorn.errors import ConfigError
from cronicorn.observability.redaction import redact_text
from cronicorn.settings import Settings


def test_alert_settings_from_env() -> None:
    settings = alert_settings_from_env(
        {
            "CRONICORN_PUBLIC_URL": "https://cron.example.com",
            "CRONICORN_SMTP_HOST": "smtp.example.com",
            "CRONICORN_SMTP_PORT": "2525",
            "CRONICORN_SMTP_USERNAME": "alerts",
            "CRONICORN_SMTP_PASSWORD": "pw-for-smtp-987",
            "CRONICORN_SMTP_FROM": "cron@example.com",
            "CRONICORN_SMTP_STARTTLS": "false",
            "CRONICORN_ALLOWED_HOSTS": "hooks.internal, 10.0.0.0/8",
            "CRONICORN_ALERT_MAX_ATTEMPTS": "3",
            "CRONICORN_ALERT_RETRY_BASE_MS": "500",
        }
    )
    assert settings.public_url == "https://cron.example.com"
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.starttls) == (
        "smtp.example.com",
        2525,
        False,
    )
    assert settings.allowed_hosts == ("hooks.internal", "10.0.0.0/8")
    assert (settings.max_attempts, settings.retry_base_ms) == (3, 500)
    assert "pw-for-smtp-987" not in repr(settings)
    assert "pw-for-smtp-987" not in redact_text("login failed with pw-for-smtp-987")
    assert Settings.from_env({"CRONICORN_SMTP_HOST": "smtp.example.com"}).alerts.smtp.port == 587


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRONICORN_SMTP_PORT", "abc"),
        ("CRONICORN_SMTP_STARTTLS", "maybe"),
        ("CRONICORN_ALERT_POLL_MS", "0"),
        ("CRONICORN_PUBLIC_URL", "cron.example.com"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        alert_settings_from_env({name: value})
