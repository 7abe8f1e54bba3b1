"""Naming rules of the on-storage format: sample keys, member extensions, shard and index names."""
from __future__ import annotations

import re

from imagenet_stream.errors import ManifestError

#: ``index.json``'s format: 2 added the exclusion overlay; readers still accept every version listed.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
#: The side index's own format (unchanged since the first release).
SIDE_INDEX_FORMAT = 2
READABLE_SIDE_INDEX_FORMATS = (1, 2)
MANIFEST_NAME = "index.json"
REPORT_NAME = "report.json"
LABELS_NAME = "labels.bin"
EXCLUSIONS_NAME = "exclusions.bin"
#: The sharder's work area under a dataset root (plan, listing, done-markers, staging by default).
WORK_NAME = ".imagenet-stream"

#: Tar member extensions of one sample (webdataset groups members by the key before the first dot).
IMAGE_EXT = "jpg"
CLASS_EXT = "cls"
META_EXT = "msgpack"
MEMBER_EXTS = (IMAGE_EXT, CLASS_EXT, META_EXT)

SHARD_SUFFIX = ".tar"
INDEX_SUFFIX = ".idx"

MAX_KEY_LENGTH = 90  # KEY + ".msgpack" stays within a ustar name field (100 bytes)
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_SHARD_RE = re.compile(r"^[A-Za-z0-9_-]+-\d{6}\.tar$")
#: Names of shards this tool did not write (``imagenet1k-train-0000.tar``): one plain file name.
_FOREIGN_SHARD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.tar$")


def is_valid_key(key: str) -> bool:
    """Keys are non-empty, at most MAX_KEY_LENGTH chars of ``[A-Za-z0-9_-]`` (no dot, no slash)."""
    return bool(_KEY_RE.match(key)) and len(key) <= MAX_KEY_LENGTH


def key_from_source(source_id: str) -> str:
    """A key that keeps the original image id: the file name without extension, unsafe chars → ``_``.

    ``"train/n02084071/n02084071_1234.JPEG"`` → ``"n02084071_1234"``.
    """
    base = source_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem = base.split(".", 1)[0] if not base.startswith(".") else base
    key = _UNSAFE.sub("_", stem).strip("_") or "sample"
    return key[:MAX_KEY_LENGTH]


def dedupe_key(key: str, n: int) -> str:
    """The n-th (n >= 1) alternative for a key already taken by a different image."""
    suffix = f"-{n}"
    return key[: MAX_KEY_LENGTH - len(suffix)] + suffix


def shard_name(prefix: str, number: int) -> str:
    """``PREFIX-NNNNNN.tar``."""
    if not _PREFIX_RE.match(prefix):
        raise ManifestError(f"shard prefix must match [A-Za-z0-9_-]+, got {prefix!r}")
    return f"{prefix}-{number:06d}{SHARD_SUFFIX}"


def check_shard_name(name: object, where: str = "manifest", foreign: bool = False) -> str:
    """``name`` if it is a shard name of the format (``PREFIX-NNNNNN.tar``; with ``foreign``, any
    plain ``NAME.tar`` file name), else ManifestError.

    Manifest names become object paths under a root, so anything else (``../x``, an absolute path,
    a URL, a folder) is refused before it is ever joined to a root.
    """
    pattern = _FOREIGN_SHARD_RE if foreign else _SHARD_RE
    if not isinstance(name, str) or not pattern.match(name) or ".." in name:
        what = "a plain NAME.tar file name" if foreign else "PREFIX-NNNNNN.tar, PREFIX of [A-Za-z0-9_-]"
        raise ManifestError(f"{where}: {name!r} is not a shard name ({what})")
    return name


def index_name(shard: str) -> str:
    """The side index of a shard: ``PREFIX-NNNNNN.idx``."""
    if not shard.endswith(SHARD_SUFFIX):
        raise ManifestError(f"shard name must end with {SHARD_SUFFIX}: {shard!r}")
    return shard[: -len(SHARD_SUFFIX)] + INDEX_SUFFIX


def split_member(name: str) -> tuple[str, str]:
    """``"dir/KEY.ext.more"`` → ``("dir/KEY", "ext.more")`` (webdataset's rule: split at the first dot of the basename)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1:]
