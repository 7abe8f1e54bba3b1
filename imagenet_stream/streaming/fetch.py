"""Read a byte range of one stored object, telling a truncated object apart from a failing store.

:meth:`Store.read` already retries transient errors with backoff; this loop reads the range in
chunks so that a failure in the middle of a long range resumes at the current byte offset (the
chunks already received are kept), and it returns *short* bytes only when the object itself is
shorter than asked (a truncated shard). A missing or forbidden object raises ``FileNotFoundError`` /
``PermissionError``; any other failure :class:`StorageError` naming the object.
"""
from __future__ import annotations

from collections.abc import Callable

from imagenet_stream.errors import StorageError
from imagenet_stream.storage import Store

DEFAULT_CHUNK = 8 << 20


def _object_size(store: Store, name: str, exc: BaseException) -> int:
    try:
        return store.size(name)
    except Exception as size_exc:  # noqa: BLE001 - the original error is the one to report
        raise StorageError(f"read {store.url_of(name)}: {store.describe(exc)} (and its size is unknown: "
                           f"{store.describe(size_exc)})") from None


def read_range(store: Store, name: str, start: int, end: int, *, chunk_size: int = DEFAULT_CHUNK,
               on_bytes: Callable[[int], None] | None = None) -> bytes:
    """Bytes ``[start, end)`` of ``name``; fewer only when the object ends before ``end``."""
    if chunk_size < 1:
        raise StorageError(f"chunk_size must be >= 1, got {chunk_size}")
    parts: list[bytes] = []
    pos = start
    while pos < end:
        stop = min(pos + chunk_size, end)
        try:
            data = store.read(name, pos, stop)
        except (FileNotFoundError, PermissionError):
            raise  # gone or forbidden: the caller decides (the reader substitutes the shard's samples)
        except Exception as exc:  # noqa: BLE001 - classified below: truncated object or failure
            if _object_size(store, name, exc) <= pos:
                break  # the range starts past the end of a truncated object (e.g. HTTP/S3 416)
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"read {store.url_of(name)}[{pos}:{stop}]: {store.describe(exc)}") from None
        if len(data) > stop - pos:
            raise StorageError(f"read {store.url_of(name)}[{pos}:{stop}]: got {len(data)} bytes for a "
                               f"{stop - pos}-byte range (does the server ignore Range requests?)")
        if not data:
            break  # end of object
        parts.append(data)
        pos += len(data)
        if on_bytes is not None:
            on_bytes(len(data))
    return parts[0] if len(parts) == 1 else b"".join(parts)


__all__ = ["DEFAULT_CHUNK", "read_range"]
