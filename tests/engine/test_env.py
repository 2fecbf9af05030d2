"""Environment variables → EngineConfig (SPEC §8)."""

from __future__ import annotations

import pytest

from cronicorn.domain.pricing import ModelPrice
from cronicorn.engine.config import EngineConfig, SchedulerConfig
from cronicorn.engine.env import ENV_VARS, engine_config_from_env
from cronicorn.errors import ConfigError

FULL_ENV = {
    "OPENAI_API_KEY": "sk-test",
    "OPENAI_BASE_URL": "http://127.0.0.1:9999/v1",
    "CRONICORN_AI_MODEL": "llama3",
    "CRONICORN_AI_TEMPERATURE": "0.7",
    "CRONICORN_AI_MAX_RETRIES": "4",
    "CRONICORN_AI_TIMEOUT_MS": "1500",
    "CRONICORN_AI_MODE": "every_run",
    "CRONICORN_MAX_CONCURRENCY": "50",
    "CRONICORN_DEFAULT_TIMEOUT_MS": "2000",
    "CRONICORN_MAX_ENDPOINT_RETRIES": "0",
    "CRONICORN_MAX_BATCH_SIZE": "7",
    "CRONICORN_JOB_CONCURRENCY": "3",
    "CRONICORN_PROCESSING_INTERVAL_MS": "250",
    "CRONICORN_STALE_LOCK_THRESHOLD_MS": "5000",
    "CRONICORN_CLAIM_AHEAD_MS": "150",
    "CRONICORN_SHUTDOWN_GRACE_MS": "1500",
    "CRONICORN_ALLOW_PRIVATE_NETWORKS": "true",
    "CRONICORN_ALLOWED_HOSTS": " api.internal, 10.0.0.0/8 ,,localhost ",
    "CRONICORN_LOG_FORMAT": "JSON",
    "CRONICORN_LOG_LEVEL": "warn",
    "CRONICORN_AI_PRICES": '{"llama3": {"input": 0.5, "output": 1.5}}',
    "CRONICORN_TENANT_MONTHLY_BUDGET_USD": "25.5",
}


def test_no_variables_gives_defaults() -> None:
    assert engine_config_from_env({}) == EngineConfig()


def test_every_variable_overrides_its_field() -> None:
    config = engine_config_from_env(FULL_ENV)
    ai, ex, sch, log = config.ai_agent, config.execution, config.scheduler, config.logger
    assert ai.api_key is not None
    assert ai.api_key.get_secret_value() == "sk-test"
    assert (ai.base_url, ai.model, ai.temperature) == ("http://127.0.0.1:9999/v1", "llama3", 0.7)
    assert (ai.max_retries, ai.timeout_ms, ai.mode) == (4, 1500, "every_run")
    assert (ex.max_concurrency, ex.default_timeout_ms, ex.max_endpoint_retries) == (50, 2000, 0)
    assert ex.allow_private_networks is True
    assert ex.allowed_hosts == ["api.internal", "10.0.0.0/8", "localhost"]
    assert (sch.max_batch_size, sch.job_concurrency) == (7, 3)
    assert (sch.processing_interval_ms, sch.stale_lock_threshold_ms) == (250, 5000)
    assert (sch.shutdown_grace_ms, sch.claim_ahead_ms) == (1500, 150)
    assert (log.format, log.level) == ("json", "WARNING")
    assert ai.model_price() == ModelPrice(0.5, 0.5, 1.5)
    assert ai.tenant_monthly_budget_usd == 25.5


def test_table_covers_every_spec_variable() -> None:
    assert {v.name for v in ENV_VARS} == set(FULL_ENV)


def test_env_overrides_base_and_keeps_the_rest() -> None:
    base = EngineConfig.model_validate(
        {"scheduler": {"max_batch_size": 99, "job_concurrency": 2}, "ai_agent": {"model": "x"}}
    )
    config = engine_config_from_env({"CRONICORN_JOB_CONCURRENCY": "5"}, base)
    assert (config.scheduler.max_batch_size, config.scheduler.job_concurrency) == (99, 5)
    assert config.ai_agent.model == "x"
    assert base.scheduler.job_concurrency == 2  # base untouched


def test_hooks_in_base_survive() -> None:
    def hook(*_: object) -> None:
        return None

    base = EngineConfig.model_validate({"events": {"on_job_end": hook}})
    config = engine_config_from_env({"CRONICORN_MAX_BATCH_SIZE": "3"}, base)
    assert config.events.on_job_end is hook


def test_empty_values_count_as_unset() -> None:
    config = engine_config_from_env({"OPENAI_API_KEY": "", "CRONICORN_MAX_CONCURRENCY": "  "})
    assert config.ai_agent.api_key is None
    assert config.execution.max_concurrency == 5


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "CRONICORN_MAX_CONCURRENCY",
            "abc",
            "CRONICORN_MAX_CONCURRENCY: must be an integer between 1 and 10000 (got 'abc')",
        ),
        (
            "CRONICORN_MAX_CONCURRENCY",
            "0",
            "CRONICORN_MAX_CONCURRENCY: must be an integer between 1 and 10000 (got '0')",
        ),
        (
            "CRONICORN_STALE_LOCK_THRESHOLD_MS",
            "10",
            "CRONICORN_STALE_LOCK_THRESHOLD_MS: must be an integer >= 1000 (got '10')",
        ),
        (
            "CRONICORN_AI_TEMPERATURE",
            "hot",
            "CRONICORN_AI_TEMPERATURE: must be a number between 0.0 and 2.0 (got 'hot')",
        ),
        (
            "CRONICORN_AI_TEMPERATURE",
            "nan",
            "CRONICORN_AI_TEMPERATURE: must be a number between 0.0 and 2.0 (got 'nan')",
        ),
        ("CRONICORN_AI_TEMPERATURE", "3", "between 0.0 and 2.0 (got '3')"),
        ("CRONICORN_AI_MAX_RETRIES", "1.5", "CRONICORN_AI_MAX_RETRIES: must be an integer"),
        ("CRONICORN_ALLOW_PRIVATE_NETWORKS", "maybe", "must be a boolean"),
        ("CRONICORN_LOG_FORMAT", "xml", "CRONICORN_LOG_FORMAT: must be text or json (got 'xml')"),
        ("CRONICORN_LOG_LEVEL", "loud", "CRONICORN_LOG_LEVEL: must be one of DEBUG"),
        ("OPENAI_BASE_URL", "ftp://x", "OPENAI_BASE_URL: must be an http(s) URL (got 'ftp://x')"),
        ("CRONICORN_ALLOWED_HOSTS", "a b,c", "CRONICORN_ALLOWED_HOSTS: must be a comma-separated"),
    ],
)
def test_bad_values_name_the_variable_on_one_line(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        engine_config_from_env({var: value})
    text = str(info.value)
    assert message in text
    assert text.startswith(f"{var}: ")
    assert "\n" not in text


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("YES", True), ("off", False)])
def test_boolean_spellings(raw: str, expected: bool) -> None:
    config = engine_config_from_env({"CRONICORN_ALLOW_PRIVATE_NETWORKS": raw})
    assert config.execution.allow_private_networks is expected


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONICORN_MAX_BATCH_SIZE", "11")
    assert engine_config_from_env().scheduler.max_batch_size == 11


def test_result_is_a_valid_config() -> None:
    config = engine_config_from_env(FULL_ENV)
    assert EngineConfig.model_validate(config.model_dump()) == config
    assert isinstance(config.scheduler, SchedulerConfig)


def test_ai_mode_is_checked() -> None:
    assert engine_config_from_env({"CRONICORN_AI_MODE": "ON_CHANGE"}).ai_agent.mode == "on_change"
    with pytest.raises(ConfigError, match="CRONICORN_AI_MODE"):
        engine_config_from_env({"CRONICORN_AI_MODE": "sometimes"})
