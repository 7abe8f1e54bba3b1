"""Opt-out and takedown registries: which samples must never be published, and why.

One entry per line: a sample key (``n01440764_10026``) or an image digest (``sha256:<64 hex>``, the
sha256 of the source file's bytes), optionally followed by a TAB and a reason (a word such as
``opt_out`` or ``takedown``; default ``opt_out``). Blank lines and ``#`` comments are ignored.
``shard --opt-out FILE`` rejects matching images with their reason before they are stored;
``exclude --keys FILE`` excludes matching keys from a published version.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from imagenet_stream.errors import ConfigError

DEFAULT_REASON = "opt_out"
#: What a registry's reason may be (besides the sharder's own reject reasons): a word such as ``takedown``.
REGISTRY_REASON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Registry:
    """``keys`` and ``sha256`` digests (lower-case hex), each mapped to its reason."""

    keys: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys) + len(self.sha256)

    def digest(self) -> str:
        """A digest of the entries (what a sharding run's output depends on)."""
        doc = json.dumps([sorted(self.keys.items()), sorted(self.sha256.items())], separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()


def parse_registry(text: str, default_reason: str = DEFAULT_REASON, where: str = "registry") -> Registry:
    """Parse a registry's text (module docstring); ConfigError names the first bad line."""
    if not REGISTRY_REASON.match(default_reason):
        raise ConfigError(f"a reason is a word such as opt_out, got {default_reason[:40]!r}")
    keys: dict[str, str] = {}
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition("\t")
        entry, reason = entry.strip(), (reason.strip() or default_reason)
        if not entry or any(c.isspace() for c in entry):
            raise ConfigError(f"{where} line {number}: expected KEY or sha256:HEX, optionally TAB REASON, "
                              f"got {line[:80]!r}")
        if not REGISTRY_REASON.match(reason):
            raise ConfigError(f"{where} line {number}: a reason is a word such as opt_out, got {reason[:40]!r}")
        match = _SHA256.match(entry)
        if match:
            digests.setdefault(match.group(1).lower(), reason)
        elif entry.lower().startswith("sha256:"):
            raise ConfigError(f"{where} line {number}: a sha256 entry needs 64 hex digits, got {entry[:80]!r}")
        else:
            keys.setdefault(entry, reason)
    return Registry(keys, digests)


def read_registry(path: str, default_reason: str = DEFAULT_REASON) -> Registry:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_registry(f.read(), default_reason, where=path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the registry {path}: {exc}") from None


__all__ = ["DEFAULT_REASON", "REGISTRY_REASON", "Registry", "parse_registry", "read_registry"]
