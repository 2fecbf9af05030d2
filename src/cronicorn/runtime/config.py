"""The base of every typed config section (`EngineConfig` and the sections it composes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """Unknown keys are an error (a typo must not be silently ignored) and assignments are
    validated like construction."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
