"""Keep credentials out of every message: exception texts, log lines, reports.

Storage errors from aiohttp, botocore or fsspec can carry what a request was sent with: headers
(``Authorization: Bearer ...``), signed query strings (``X-Amz-Signature=...``, Azure SAS ``sig=``),
credentials in a URL (``https://user:password@host``) or the storage options themselves. A
:class:`Redactor` knows the secret values of one set of storage options and scrubs them, plus every
pattern above, from any text. :func:`describe` is how the library turns a foreign exception into
message text: its class name and its redacted ``str`` (never ``repr``, which for aiohttp embeds the
request's headers).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

#: Option names (any nesting depth, case-insensitive) whose values are secrets.
_SECRET_NAME = re.compile(r"key|secret|token|passw|credential|auth|session|signature|cookie|sas|bearer",
                          re.IGNORECASE)
#: Option names whose every value is a secret (header maps: any header may carry a credential).
_SECRET_MAPS = ("headers",)
#: Environment variables whose values are secrets wherever they appear.
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN",
               "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING",
               "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_MIN_SECRET = 4  # shorter values would mask ordinary text

_QUERY = re.compile(
    r"(?i)([?&;](?:x-amz-[a-z0-9-]+|x-goog-[a-z0-9-]+|signature|sig|se|sp|sv|skoid|sktid|token|access_token|"
    r"auth|key|apikey|api_key|password|credential|security-token|policy|expires)=)[^&\s'\"<>]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")
_AUTH_HEADER = re.compile(r"(?i)((?:authorization|proxy-authorization|x-amz-security-token|x-api-key|cookie)"
                          r"['\"]?\s*[:=]\s*['\"]?)[^'\"\n,>)]+")


def _collect(value: Any, secret: bool, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            name = str(name)
            _collect(item, secret or bool(_SECRET_NAME.search(name)) or name.lower() in _SECRET_MAPS, out)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(item, secret, out)
    elif secret and isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if len(text) >= _MIN_SECRET:
            out.add(text)
            if " " in text:  # "Bearer abc...": the token alone may appear too
                out.update(part for part in text.split() if len(part) >= _MIN_SECRET and part.lower() != "bearer")


class Redactor:
    """Scrubs the secrets of ``storage_options`` (and the environment's) plus known patterns from text."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None, extra: Iterable[str] = ()) -> None:
        secrets: set[str] = set()
        _collect(dict(storage_options or {}), False, secrets)
        secrets.update(v for v in (os.environ.get(name) for name in _SECRET_ENV) if v and len(v) >= _MIN_SECRET)
        secrets.update(s for s in extra if s and len(s) >= _MIN_SECRET)
        self._secrets = sorted(secrets, key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        return redact(text, self._secrets)

    def describe(self, exc: BaseException) -> str:
        """``ClassName: redacted message`` of a foreign exception."""
        return describe(exc, self._secrets)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values and credential patterns replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _AUTH_HEADER.sub(rf"\1{MASK}", text)


def redact_url(url: str) -> str:
    """A URL fit for messages: credentials in its user-info and signed query parameters masked."""
    return redact(url)


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``ClassName: message`` of ``exc`` with secrets masked (``str``, never ``repr``)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the original error
        text = ""
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name, secrets)


__all__ = ["MASK", "Redactor", "describe", "redact", "redact_url"]
