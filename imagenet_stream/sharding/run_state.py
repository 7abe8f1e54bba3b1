"""The sharder's work area in the output: ``OUT/.imagenet-stream/``, what makes a run resumable.

``run.json``  the run: its key (sources and every output-affecting option), the plan's hash, when it
              started (the manifest's ``created``), the listing's digest and how far it got
``listing/``  the listing (:mod:`.listing`), column files and their ``meta`` (written last), until
              the run is finalized
``done/<plan>/PREFIX-NNNNNN.msgpack``   done-markers of that plan (:mod:`.markers`)
``staging/``  uncompressed inner tars of compressed sources (when ``--staging`` is not given)

Living on the output's own storage, it survives the machine: the same command run anywhere with
the same ``--out`` continues where the last one stopped.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import WORK_NAME
from imagenet_stream.sharding.markers import DONE_FOLDER, is_marker_name
from imagenet_stream.storage import Store

log = logging.getLogger(__name__)

RUN_FORMAT = 1
RUN_NAME = f"{WORK_NAME}/run.json"
LISTING_PREFIX = f"{WORK_NAME}/listing"
STAGING = f"{WORK_NAME}/staging"


@dataclass(frozen=True)
class RunState:
    """What ``run.json`` holds."""

    run_key: str
    created: float                  # seconds since the epoch: the first run's start
    listing_digest: str = ""
    plan_hash: str = ""
    num_shards: int = 0
    num_records: int = 0
    finalized: bool = False
    format: int = RUN_FORMAT


class WorkArea:
    """Names and reads of the work area of ``store`` (the output root)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def prefix(self) -> str:
        return WORK_NAME

    def done_folder(self, plan_hash: str) -> str:
        return f"{WORK_NAME}/{DONE_FOLDER}/{plan_hash[:16]}"

    def marker(self, plan_hash: str, shard: str) -> str:
        return f"{self.done_folder(plan_hash)}/{shard.rsplit('.', 1)[0]}.msgpack"

    def remove_listing(self) -> None:
        self.store.remove_tree(LISTING_PREFIX)

    def load_state(self) -> RunState | None:
        try:
            raw = self.store.read(RUN_NAME)
        except FileNotFoundError:
            return None
        try:
            doc: dict[str, Any] = json.loads(raw)
            if doc.get("format") != RUN_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            return RunState(**doc)
        except (ValueError, TypeError) as exc:
            raise ManifestError(f"{self.store.url_of(RUN_NAME)} is unreadable ({exc}); re-run with --overwrite") from None

    def save_state(self, state: RunState) -> None:
        self.store.write_atomic(RUN_NAME, json.dumps(asdict(state), indent=1).encode())

    def done_shards(self, plan_hash: str) -> set[str]:
        """Shard names (``PREFIX-NNNNNN.tar``) with a done-marker of ``plan_hash``."""
        found = set()
        for name, size, is_dir in self.store.entries(self.done_folder(plan_hash)):
            if not is_dir and size > 0 and is_marker_name(name):
                found.add(name[: -len(".msgpack")] + ".tar")
        return found

    def remove_all(self) -> None:
        """Delete the whole work area (``--overwrite``)."""
        self.store.remove_tree(WORK_NAME)


__all__ = ["LISTING_PREFIX", "RUN_NAME", "RunState", "STAGING", "WorkArea"]
