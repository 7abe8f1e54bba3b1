"""Download status files (URL-list datasets): one row per listed URL of a shard, beside the shards.

``status/PREFIX-NNNNNN.parquet`` (where pyarrow is installed) or ``.jsonl``; each row: ``key``,
``wnid``, ``url``, ``status`` (``success``, ``failed_to_download``, ``rejected``,
``skipped_by_robots``), ``reason`` (the error class or the reject reason), ``http_status``,
``bytes``, ``attempts``, ``seconds`` and ``downloaded`` (UTC, ISO 8601). See docs/FORMAT.md.
"""
from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from imagenet_stream.errors import ConfigError
from imagenet_stream.storage import Store

STATUS_FOLDER = "status"
STATUS_SUFFIXES = (".parquet", ".jsonl")


STATUS_FORMATS = ("auto", "parquet", "jsonl")


def encode_status_rows(rows: Sequence[Mapping[str, Any]], fmt: str = "auto") -> tuple[str, bytes]:
    """``(suffix, bytes)`` of a status file: ``parquet`` (needs pyarrow), ``jsonl``, or ``auto``:
    Parquet where pyarrow imports, else JSON lines."""
    if fmt not in STATUS_FORMATS:
        raise ConfigError(f"status format must be one of {STATUS_FORMATS}, got {fmt!r}")
    try:
        if fmt == "jsonl":
            raise ImportError
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        if fmt == "parquet":
            raise ConfigError("Parquet status files need pyarrow: pip install 'imagenet-stream[parquet]'") from None
        return ".jsonl", "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in rows).encode()
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), buffer)
    return ".parquet", buffer.getvalue()


def read_status_rows(store: Store, name: str) -> list[dict[str, Any]]:
    """The rows of the status file ``name`` of ``store``."""
    raw = store.read(name)
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(raw)).to_pylist()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


__all__ = ["STATUS_FOLDER", "STATUS_FORMATS", "STATUS_SUFFIXES", "encode_status_rows", "read_status_rows"]
