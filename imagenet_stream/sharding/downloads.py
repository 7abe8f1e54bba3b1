"""The shard task's side of URL lists: download a record, and account for every URL of the shard.

:func:`load_url` turns a URL record into what verify takes (the downloaded bytes), or into a
rejection (``failed_to_download`` with the error class, ``skipped_by_robots``) without verifying.
:class:`StatusLog` gathers one status row per URL record of a shard (``success``,
``failed_to_download``, ``rejected`` with the reason, ``skipped_by_robots``; with the HTTP status,
bytes, attempts and seconds), writes them beside the shards as ``status/PREFIX-NNNNNN.jsonl`` (or
``.parquet`` where pyarrow is installed), and sums them for the shard's done-marker: counts per
status and error class, per synset (link rot) and per failing host.
"""
from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter, OrderedDict
from datetime import datetime, timezone
from typing import Any

from imagenet_stream.curation.download import FAILED, ROBOTS, SUCCESS, Downloader, DownloadPolicy
from imagenet_stream.format.download_status import STATUS_FOLDER, encode_status_rows
from imagenet_stream.sharding.listing import Record
from imagenet_stream.sharding.records import Rejected, SourceRecord, Verified
from imagenet_stream.storage import Store

REJECTED = "rejected"
#: Hosts whose failures a marker keeps (the most failing ones), so a marker stays small.
_HOSTS_KEPT = 50

_DOWNLOADERS: OrderedDict[tuple[DownloadPolicy, int], Downloader] = OrderedDict()
_DOWNLOADERS_LOCK = threading.Lock()


def _downloader(policy: DownloadPolicy, max_bytes: int) -> Downloader:
    """This process's downloader for the policy (its per-host limits are per process)."""
    with _DOWNLOADERS_LOCK:
        found = _DOWNLOADERS.get((policy, max_bytes))
        if found is None:
            found = _DOWNLOADERS[(policy, max_bytes)] = Downloader(policy, max_bytes)
            while len(_DOWNLOADERS) > 4:
                _DOWNLOADERS.popitem(last=False)
        return found


def load_url(policy: DownloadPolicy, max_bytes: int, record: Record, key: str, source: str
             ) -> SourceRecord | Rejected:
    """Download ``record.name``: a SourceRecord with the bytes (and the download's facts), or the
    Rejected of a failed or robot-skipped download."""
    fetched = _downloader(policy, max_bytes).fetch(record.name)
    row = {**fetched.row(), "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds")
           .replace("+00:00", "Z")}
    if fetched.status == SUCCESS:
        assert fetched.data is not None
        return SourceRecord(source=source, wnid=record.wnid, key=key, data=fetched.data, size=len(fetched.data),
                            download=row)
    detail = fetched.error + (f" (HTTP {fetched.http_status})" if fetched.http_status else "")
    return Rejected(key, record.wnid, source, FAILED if fetched.status == FAILED else ROBOTS, detail, download=row)


def sample_fields(record: Record, item: SourceRecord, default_licence: str | None) -> dict[str, Any]:
    """What a downloaded sample's metadata gets: its URL, when it was downloaded, and the list's
    other columns (``licence`` defaulting to ``--licence``)."""
    extra = json.loads(record.extra) if record.extra else {}
    fields: dict[str, Any] = {"url": record.name, "downloaded": (item.download or {}).get("downloaded")}
    if default_licence and "licence" not in extra and "license" not in extra:
        fields["licence"] = default_licence
    fields.update(extra)
    return fields


class StatusLog:
    """The status rows of one shard's URL records, in plan order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.synsets: dict[str, list[int]] = {}
        self.hosts: dict[str, Counter[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, record: Record, key: str, outcome: Verified | Rejected, loaded: SourceRecord | Rejected) -> None:
        download = (loaded.download if isinstance(loaded, (SourceRecord, Rejected)) else None) or {}
        if isinstance(outcome, Verified):
            status, reason = SUCCESS, ""
        elif outcome.reason in (FAILED, ROBOTS):
            status, reason = outcome.reason, download.get("error", "")
        else:
            status, reason = REJECTED, outcome.reason
        row = {"key": key, "wnid": record.wnid, "url": record.name, "status": status, "reason": reason,
               "http_status": download.get("http_status"), "bytes": download.get("bytes", 0),
               "attempts": download.get("attempts", 0), "seconds": download.get("seconds", 0.0),
               "downloaded": download.get("downloaded")}
        self.rows.append(row)
        self.counts[status] += 1
        tally = self.synsets.setdefault(record.wnid, [0, 0])
        tally[0] += status == SUCCESS
        tally[1] += 1
        if status == FAILED:
            self.errors[reason] += 1
            host = (urllib.parse.urlsplit(record.name).hostname or "?").lower()
            self.hosts.setdefault(host, Counter())[reason] += 1

    def write(self, store: Store, name: str, fmt: str = "auto") -> str:
        """Write the rows as ``status/<name>.parquet`` or ``.jsonl`` (``fmt``); the object name."""
        suffix, data = encode_status_rows(self.rows, fmt)
        target = f"{STATUS_FOLDER}/{name}{suffix}"
        store.write_atomic(target, data)
        return target

    def summary(self, status_file: str) -> dict[str, Any]:
        """What the done-marker keeps: counts, error classes, per-synset ``[ok, total]``, failing hosts."""
        hosts = sorted(self.hosts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:_HOSTS_KEPT]
        return {"status_file": status_file, "counts": dict(self.counts), "errors": dict(self.errors),
                "synsets": self.synsets, "hosts": {h: dict(c) for h, c in hosts}}


__all__ = ["REJECTED", "StatusLog", "load_url", "sample_fields"]
