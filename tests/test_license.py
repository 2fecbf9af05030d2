"""The licence pyproject.toml declares is shipped (hatchling includes LICENSE in the wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_license_file_matches_the_declared_license() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == {"text": "MIT"}
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 Cronicorn contributors" in text
