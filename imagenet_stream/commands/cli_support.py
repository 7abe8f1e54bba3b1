"""Helpers shared by CLI commands: storage-options parsing and error reporting."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from imagenet_stream.errors import ConfigError

#: Environment variable read when ``--storage-options`` is not given (a JSON object, or ``@FILE``).
STORAGE_OPTIONS_ENV = "IMAGENET_STREAM_STORAGE_OPTIONS"
STORAGE_OPTIONS_HELP = ("fsspec storage options as a JSON object, or @FILE.json to read them from a file "
                        f"(default: ${STORAGE_OPTIONS_ENV}, same forms), so secrets need not sit in argv; "
                        "added to fsspec's own config (e.g. AWS_* env vars); never printed")


def parse_storage_options(text: str | None, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """``--storage-options JSON|@FILE`` (else ``$IMAGENET_STREAM_STORAGE_OPTIONS``) → dict.

    The text is never echoed back in an error: it may hold credentials.
    """
    source = "--storage-options"
    if not text:
        text = (os.environ if env is None else env).get(STORAGE_OPTIONS_ENV, "")
        source = f"${STORAGE_OPTIONS_ENV}"
        if not text.strip():
            return None
    text = text.strip()
    if text.startswith("@"):
        path = os.path.expanduser(text[1:])
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read {path!r}: {exc.strerror or exc}") from None
        source = f"{source} file {path!r}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        msg, pos = getattr(exc, "msg", "invalid"), getattr(exc, "pos", "?")
        raise ConfigError(f"{source} is not valid JSON ({msg} at character {pos})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source} must be a JSON object, got a {type(value).__name__}")
    return value


def fail(message: str, code: int = 2) -> int:
    """Print ``message`` to stderr and return ``code``."""
    print(f"imagenet-stream: error: {message}", file=sys.stderr)
    return code
