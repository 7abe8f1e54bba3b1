"""Per-shard done-markers: the durable record that a shard is complete, and what it holds.

A marker (``WORK/done/<plan>/PREFIX-NNNNNN.msgpack``, msgpack) is written last by a shard task, after the
tar and its side index are committed. It holds the plan's hash (a marker of another plan is never
mistaken for this one), the tar's and side index's sizes and sha256, and per kept sample its key,
class, plan position and source sha256 (for cross-shard duplicates), plus the rejections with their
reasons and examples. Finalizing a run reads only markers, never shards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from imagenet_stream.errors import ManifestError

MARKER_FORMAT = 1
DONE_FOLDER = "done"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+-\d{6}\.msgpack$")


def marker_name(folder: str, prefix: str, number: int) -> str:
    """``FOLDER/PREFIX-NNNNNN.msgpack`` (FOLDER: the plan's ``done/`` folder of the work area)."""
    return f"{folder}/{prefix}-{number:06d}.msgpack"


def is_marker_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


@dataclass(frozen=True, eq=False)
class Marker:
    plan_hash: str
    shard: str
    number: int
    first_position: int            # plan position of the shard's first planned record
    planned: int                   # records planned into the shard
    tar_bytes: int
    tar_sha256: str
    index_bytes: int
    index_sha256: str
    keys: tuple[str, ...]          # kept samples, in tar order
    labels: np.ndarray             # uint32 per kept sample
    positions: np.ndarray          # uint64 plan position per kept sample
    source_sha256: bytes           # 32 bytes per kept sample, concatenated
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    fixes: dict[str, int] = field(default_factory=dict)
    downloads: dict[str, Any] | None = None   # a URL list's shard: its StatusLog summary

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    def to_bytes(self) -> bytes:
        return msgpack.packb({
            "format": MARKER_FORMAT, "plan_hash": self.plan_hash, "shard": self.shard, "number": self.number,
            "first_position": self.first_position, "planned": self.planned,
            "tar": [self.tar_bytes, self.tar_sha256], "index": [self.index_bytes, self.index_sha256],
            "keys": list(self.keys), "labels": self.labels.astype("<u4").tobytes(),
            "positions": self.positions.astype("<u8").tobytes(), "source_sha256": self.source_sha256,
            "rejected": self.rejected, "examples": self.examples, "fixes": self.fixes,
            **({"downloads": self.downloads} if self.downloads is not None else {}),
        }, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "marker") -> Marker:
        try:
            doc: dict[str, Any] = msgpack.unpackb(data, raw=False)
            if doc.get("format") != MARKER_FORMAT:
                raise ManifestError(f"{where}: marker format {doc.get('format')!r} is not {MARKER_FORMAT}")
            keys = tuple(doc["keys"])
            labels = np.frombuffer(doc["labels"], dtype="<u4").astype(np.uint32)
            positions = np.frombuffer(doc["positions"], dtype="<u8").astype(np.uint64)
            sha = bytes(doc["source_sha256"])
            if not (len(labels) == len(positions) == len(keys) and len(sha) == 32 * len(keys)):
                raise ManifestError(f"{where}: marker columns disagree in length")
            return cls(plan_hash=str(doc["plan_hash"]), shard=str(doc["shard"]), number=int(doc["number"]),
                       first_position=int(doc["first_position"]), planned=int(doc["planned"]),
                       tar_bytes=int(doc["tar"][0]), tar_sha256=str(doc["tar"][1]),
                       index_bytes=int(doc["index"][0]), index_sha256=str(doc["index"][1]), keys=keys,
                       labels=labels, positions=positions, source_sha256=sha,
                       rejected={str(k): int(v) for k, v in dict(doc["rejected"]).items()},
                       examples=dict(doc["examples"]), fixes={str(k): int(v) for k, v in dict(doc["fixes"]).items()},
                       downloads=doc.get("downloads"))
        except ManifestError:
            raise
        except Exception as exc:  # noqa: BLE001 - msgpack and the lookups raise several types
            raise ManifestError(f"{where}: unreadable marker ({type(exc).__name__}: {exc})") from None


__all__ = ["DONE_FOLDER", "MARKER_FORMAT", "Marker", "is_marker_name", "marker_name"]
