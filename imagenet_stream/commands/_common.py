"""Helpers shared by CLI commands: storage-options parsing and error reporting."""
from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import ConfigError


def parse_storage_options(text: str | None) -> dict[str, Any] | None:
    """``--storage-options JSON`` → dict (never echoed back: it may hold credentials)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--storage-options is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--storage-options must be a JSON object, got a {type(value).__name__}")
    return value


def fail(message: str, code: int = 2) -> int:
    """Print ``message`` to stderr and return ``code``."""
    print(f"imagenet-stream: error: {message}", file=sys.stderr)
    return code
