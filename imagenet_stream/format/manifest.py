"""The dataset manifest ``index.json``: frozen dataclasses and their JSON form.

Written last and atomically by the sharder; read by every streaming worker at start, so it holds
per-shard and per-class totals only (a few MB for ImageNet-21k), never per-sample detail.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from imagenet_stream.errors import ManifestError
from imagenet_stream.format.names import (
    EXCLUSIONS_NAME,
    FORMAT_VERSION,
    LABELS_NAME,
    MANIFEST_NAME,
    READABLE_FORMATS,
    check_shard_name,
    index_name,
)


class _Readable(Protocol):
    """What :meth:`Manifest.load` needs of a store (``imagenet_stream.storage.Store`` fits)."""

    def read(self, name: str) -> bytes: ...

    def url_of(self, name: str) -> str: ...


def wnids_sha256(wnids: Sequence[str]) -> str:
    """Checksum of a class space: sha256 of the wnids joined by newlines."""
    return hashlib.sha256("\n".join(wnids).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ClassesInfo:
    """The class space of the ``.cls`` indices: ``wnids[i]`` is class ``i``."""

    space: str                 # "in1k", "in21k", "in22k" or "custom:<name>"
    wnids: tuple[str, ...]
    sha256: str = ""

    def __post_init__(self) -> None:
        digest = wnids_sha256(self.wnids)
        if not self.sha256:
            object.__setattr__(self, "sha256", digest)
        elif self.sha256 != digest:
            raise ManifestError(f"class space {self.space!r}: sha256 {self.sha256} does not match its wnids ({digest})")

    @property
    def num_classes(self) -> int:
        return len(self.wnids)


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: The exclusion overlay's bitmap encoding: bit ``i`` (little-endian within each byte) excludes sample ``i``.
BITS = "bits"
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s]+$")


def _is_absolute_url(url: object) -> bool:
    """``s3://b/x``, ``https://h/x``, ``file:///x`` or ``/x``: never relative (``../x`` could climb
    out of a root), never with ``..`` segments."""
    if not isinstance(url, str) or "/../" in f"{url}/" or "\x00" in url:
        return False
    return bool(_URL_RE.match(url)) or url.startswith("/")


def _check_file_fields(name: str, size: object, sha256: object, count: object = 0) -> None:
    for what, value in (("bytes", size), ("num_samples", count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ManifestError(f"manifest entry {name!r}: {what} must be an integer >= 0, got {value!r}")
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise ManifestError(f"manifest entry {name!r}: sha256 must be 64 lowercase hex digits, got {sha256!r}")


@dataclass(frozen=True)
class ShardEntry:
    name: str                  # "train-000000.tar", relative to the dataset root
    num_samples: int
    bytes: int
    sha256: str
    index: str                 # side index name, "train-000000.idx"
    index_bytes: int
    index_sha256: str

    def __post_init__(self) -> None:
        check_shard_name(self.name, "manifest shard", foreign=True)
        if self.index != index_name(self.name):
            raise ManifestError(f"manifest shard {self.name!r}: side index {self.index!r} must be "
                                f"{index_name(self.name)!r}")
        _check_file_fields(self.name, self.bytes, self.sha256, self.num_samples)
        _check_file_fields(self.index, self.index_bytes, self.index_sha256)


@dataclass(frozen=True)
class LabelsEntry:
    """``labels.bin``: every sample's class index, shards in manifest order (for planning class subsets)."""

    name: str
    dtype: str                 # numpy dtype string, "<u2" or "<u4"
    bytes: int
    sha256: str

    def __post_init__(self) -> None:
        if self.name != LABELS_NAME:
            raise ManifestError(f"manifest labels: name must be {LABELS_NAME!r}, got {self.name!r}")
        if self.dtype not in ("<u2", "<u4"):
            raise ManifestError(f"manifest labels: dtype must be '<u2' or '<u4', got {self.dtype!r}")
        _check_file_fields(self.name, self.bytes, self.sha256)


@dataclass(frozen=True)
class ExclusionsEntry:
    """``exclusions.bin``: sorted, unique global sample ids readers must never yield (format 2).

    Samples stay in their shards (shards are never rewritten); a new dataset version over the same
    shards is a new ``index.json`` with a larger overlay. ``reasons`` counts the ids per reason
    (``duplicate``, later ``opt_out``, ``takedown``, ...).
    """

    name: str
    dtype: str                 # "<u4" (fewer than 2**32 samples) or "<u8": the ids; "bits": one bit per sample
    count: int
    bytes: int
    sha256: str
    reasons: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name != EXCLUSIONS_NAME:
            raise ManifestError(f"manifest exclusions: name must be {EXCLUSIONS_NAME!r}, got {self.name!r}")
        if self.dtype not in ("<u4", "<u8", BITS):
            raise ManifestError(f"manifest exclusions: dtype must be '<u4', '<u8' or 'bits', got {self.dtype!r}")
        _check_file_fields(self.name, self.bytes, self.sha256, self.count)
        if self.dtype != BITS and self.bytes != self.count * int(self.dtype[-1]):
            raise ManifestError(f"manifest exclusions: {self.count} ids of {self.dtype} cannot take {self.bytes} bytes")
        if not isinstance(self.reasons, dict) or sum(int(v) for v in self.reasons.values()) != self.count:
            raise ManifestError(f"manifest exclusions: reasons {self.reasons!r} do not add up to {self.count}")


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created: str               # ISO 8601 UTC
    tool: str                  # "imagenet-stream 0.1.0"
    classes: ClassesInfo
    num_samples: int
    class_counts: tuple[int, ...]
    shards: tuple[ShardEntry, ...]
    labels: LabelsEntry | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    exclusions: ExclusionsEntry | None = None
    shards_at: str | None = None     # the URL of the folder holding the shard tars (None: this folder)
    indexes_at: str | None = None    # ... and their side indexes (None: this folder)
    targets: ClassesInfo | None = None  # a version's own class space (split): targets index it by wnid

    def __post_init__(self) -> None:
        if self.format_version not in READABLE_FORMATS:
            raise ManifestError(f"format_version {self.format_version!r} is not supported "
                                f"(this reader knows {', '.join(map(str, READABLE_FORMATS))})")
        if (self.exclusions is not None or self.shards_at or self.indexes_at) and self.format_version < 2:
            raise ManifestError("an exclusion overlay or shards stored elsewhere need format_version 2")
        for name, url in (("shards_at", self.shards_at), ("indexes_at", self.indexes_at)):
            if url is not None and not _is_absolute_url(url):
                raise ManifestError(f"manifest {name} must be an absolute URL or path (scheme://... or /...), "
                                    f"got {url!r}")
        if self.shards_at is None:  # our own shards, in this folder: the strict names
            for s in self.shards:
                check_shard_name(s.name, "manifest shard")
        if len(self.class_counts) != self.classes.num_classes:
            raise ManifestError(f"class_counts has {len(self.class_counts)} entries for "
                                f"{self.classes.num_classes} classes")
        total = sum(s.num_samples for s in self.shards)
        if total != self.num_samples:
            raise ManifestError(f"shards hold {total} samples but num_samples is {self.num_samples}")
        excluded = self.exclusions.count if self.exclusions is not None else 0
        if excluded > self.num_samples:
            raise ManifestError(f"{excluded} excluded samples of {self.num_samples}")
        if sum(self.class_counts) != self.num_samples - excluded:
            raise ManifestError(f"class_counts sum to {sum(self.class_counts)}, but {self.num_samples} samples minus "
                                f"{excluded} excluded are {self.num_samples - excluded}")
        names = [s.name for s in self.shards]
        if len(set(names)) != len(names):
            raise ManifestError("duplicate shard names in manifest")

    @property
    def num_available(self) -> int:
        """Samples a reader yields: those in the shards minus the excluded ones."""
        return self.num_samples - (self.exclusions.count if self.exclusions is not None else 0)

    @property
    def sample_counts(self) -> list[int]:
        """Samples per shard, in manifest order (the planner's input)."""
        return [s.num_samples for s in self.shards]

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["classes"] = {"space": self.classes.space, "num_classes": self.classes.num_classes,
                          "sha256": self.classes.sha256, "wnids": list(self.classes.wnids)}
        doc["class_counts"] = list(self.class_counts)
        doc["shards"] = [asdict(s) for s in self.shards]
        if self.targets is not None:
            doc["targets"] = {"space": self.targets.space, "num_classes": self.targets.num_classes,
                              "sha256": self.targets.sha256, "wnids": list(self.targets.wnids)}
        order = ["format_version", "name", "version", "created", "tool", "num_samples", "classes", "targets",
                 "class_counts", "labels", "exclusions", "shards_at", "indexes_at", "shards", "extra"]
        for optional in ("targets", "exclusions", "shards_at", "indexes_at"):
            if doc[optional] is None:
                order.remove(optional)
        return json.dumps({k: doc[k] for k in order}, separators=(",", ":"))

    @classmethod
    def load(cls, store: _Readable) -> "Manifest":
        """Read and validate ``index.json`` of the dataset root ``store``.

        ManifestError when it is absent: not a dataset root, or a sharding run that did not finish.
        """
        where = store.url_of(MANIFEST_NAME)
        try:
            raw = store.read(MANIFEST_NAME)
        except FileNotFoundError:
            raise ManifestError(f"{where} not found: not a dataset root, or an unfinished sharding run "
                                "(for bare shards use a brace URL such as .../train-{000000..000009}.tar)") from None
        return cls.from_json(raw, where=where)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "index.json") -> "Manifest":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"{where}: not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        try:
            version = doc.get("format_version")
            if version not in READABLE_FORMATS:
                raise ManifestError(f"{where}: format_version {version!r} is not supported (this reader knows "
                                    f"{', '.join(map(str, READABLE_FORMATS))}); upgrade imagenet-stream")
            c = doc["classes"]
            classes = ClassesInfo(space=c["space"], wnids=tuple(c["wnids"]), sha256=c["sha256"])
            if c.get("num_classes", classes.num_classes) != classes.num_classes:
                raise ManifestError(f"{where}: classes.num_classes disagrees with the wnid list")
            labels = LabelsEntry(**doc["labels"]) if doc.get("labels") else None
            exclusions = ExclusionsEntry(**doc["exclusions"]) if doc.get("exclusions") else None
            t = doc.get("targets")
            targets = ClassesInfo(space=t["space"], wnids=tuple(t["wnids"]), sha256=t["sha256"]) if t else None
            return cls(
                name=doc["name"], version=doc["version"], created=doc["created"], tool=doc["tool"],
                classes=classes, num_samples=int(doc["num_samples"]),
                class_counts=tuple(int(x) for x in doc["class_counts"]),
                shards=tuple(ShardEntry(**s) for s in doc["shards"]),
                labels=labels, format_version=version, extra=dict(doc.get("extra") or {}), exclusions=exclusions,
                shards_at=doc.get("shards_at"), indexes_at=doc.get("indexes_at"), targets=targets,
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from exc
