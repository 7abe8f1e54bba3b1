"""Exact duplicates across a whole dataset, in bounded memory: first in plan order is kept.

Each kept sample contributes a 128-bit fingerprint (the first 16 bytes of its source sha256) and its
global sample id. Fingerprints are partitioned by their first byte into 256 local bucket files as
they stream in; each bucket (1/256 of the dataset: 24 bytes a sample) is then sorted on its own,
and every sample whose fingerprint equals an earlier one's (lower global id, i.e. earlier in plan
order) is a duplicate. Two different images share a 128-bit prefix with probability ~1e-25 at
ImageNet scale.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

_BUCKETS = 256
_ROW = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("gid", "<u8")])


class DuplicateFinder:
    """``add(fingerprints, first_gid)`` per shard, then :meth:`duplicates`: ``(dup gids, kept gids)``."""

    def __init__(self, work_dir: str | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="imagenet-stream-dedup-", dir=work_dir)
        self._files = [open(os.path.join(self._dir, f"{b:03d}.bin"), "wb") for b in range(_BUCKETS)]

    def add(self, sha256: bytes, first_gid: int) -> None:
        """``sha256``: 32 bytes per sample (concatenated); their global ids are ``first_gid, +1, ...``."""
        n = len(sha256) // 32
        if n == 0:
            return
        raw = np.frombuffer(sha256, dtype=np.uint8).reshape(n, 32)
        rows = np.empty(n, dtype=_ROW)
        rows["hi"] = raw[:, :8].copy().view(">u8").ravel()
        rows["lo"] = raw[:, 8:16].copy().view(">u8").ravel()
        rows["gid"] = np.arange(first_gid, first_gid + n, dtype=np.uint64)
        bucket = raw[:, 0]
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(_BUCKETS + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            self._files[b].write(rows[order[bounds[b]:bounds[b + 1]]].tobytes())

    def duplicates(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted global ids of duplicates, and for each the id of the kept sample it repeats."""
        for f in self._files:
            f.close()
        dups, kept = [], []
        for b in range(_BUCKETS):
            rows = np.fromfile(os.path.join(self._dir, f"{b:03d}.bin"), dtype=_ROW)
            if rows.size < 2:
                continue
            rows = rows[np.lexsort((rows["gid"], rows["lo"], rows["hi"]))]
            same = (rows["hi"][1:] == rows["hi"][:-1]) & (rows["lo"][1:] == rows["lo"][:-1])
            if not same.any():
                continue
            starts = np.concatenate([[True], ~same])  # first of each fingerprint group
            group_first = np.maximum.accumulate(np.where(starts, np.arange(rows.size), 0))
            repeat = np.flatnonzero(~starts)
            dups.append(rows["gid"][repeat])
            kept.append(rows["gid"][group_first[repeat]])
        self.close()
        if not dups:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        d, k = np.concatenate(dups), np.concatenate(kept)
        order = np.argsort(d)
        return d[order], k[order]

    def close(self) -> None:
        for f in self._files:
            if not f.closed:
                f.close()
        shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["DuplicateFinder"]
