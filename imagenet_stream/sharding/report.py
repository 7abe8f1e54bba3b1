"""The sharding report: what was kept, what was rejected and why, how fast. Saved as ``report.json``."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .records import REJECT_REASONS, Rejected, Verified

MAX_EXAMPLES = 10


@dataclass
class ReportBuilder:
    """Counts outcomes as the pipeline sees them, keeping up to ``max_examples`` examples per kind."""

    max_examples: int = MAX_EXAMPLES
    seen: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    fixes: Counter = field(default_factory=Counter)
    key_collisions: int = 0
    collision_examples: list[dict[str, str]] = field(default_factory=list)

    def record_seen(self, n: int = 1) -> None:
        self.seen += n

    def record_kept(self, sample: Verified) -> None:
        self.kept += 1
        self.fixes.update(sample.fixes)

    def record_rejected(self, rejected: Rejected) -> None:
        self.rejected[rejected.reason] += 1
        examples = self.examples.setdefault(rejected.reason, [])
        if len(examples) < self.max_examples:
            examples.append({"key": rejected.key, "source": rejected.source, "detail": rejected.detail})

    def record_key_collision(self, key: str, renamed: str, source: str) -> None:
        self.key_collisions += 1
        if len(self.collision_examples) < self.max_examples:
            self.collision_examples.append({"key": key, "renamed_to": renamed, "source": source})

    def build(self, *, out: str, sources: list[str], class_space: str, num_classes: int,
              shards: int, total_bytes: int, seconds: float, seed: int) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        order = ([r for r in REJECT_REASONS if r in self.rejected]
                 + sorted(set(self.rejected) - set(REJECT_REASONS)))
        return {
            "out": out,
            "sources": list(sources),
            "seed": seed,
            "class_space": {"id": class_space, "num_classes": num_classes},
            "seen": self.seen,
            "kept": self.kept,
            "rejected_total": sum(self.rejected.values()),
            "rejected": {r: {"count": self.rejected[r], "examples": self.examples.get(r, [])} for r in order},
            "duplicates": self.rejected.get("duplicate", 0),
            "key_collisions": {"count": self.key_collisions, "examples": self.collision_examples},
            "fixes": dict(sorted(self.fixes.items())),
            "shards": shards,
            "bytes": total_bytes,
            "seconds": round(seconds, 3),
            "images_per_s": round(self.seen / seconds, 1) if seconds > 0 else None,
        }


def report_json(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=2).encode("utf-8")


def format_report(report: dict[str, Any]) -> str:
    """A human-readable summary of a report dict (what the CLI prints)."""
    space = report["class_space"]
    lines = [
        f"sharded {report['seen']} images from {len(report['sources'])} source(s) into {report['out']}",
        f"  kept        {report['kept']} in {report['shards']} shard(s), {format_size(report['bytes'])}, "
        f"class space {space['id']} ({space['num_classes']} classes)",
        f"  rejected    {report['rejected_total']} (of which {report['duplicates']} exact duplicates)",
    ]
    for reason, entry in report["rejected"].items():
        example = entry["examples"][0] if entry["examples"] else None
        hint = f"  e.g. {example['key']}: {example['detail']}" if example else ""
        lines.append(f"    {reason:<20} {entry['count']:>8}{hint}")
    if report["key_collisions"]["count"]:
        lines.append(f"  key collisions {report['key_collisions']['count']} (renamed with a -N suffix)")
    if report["fixes"]:
        lines.append("  normalized  " + ", ".join(f"{k} {v}" for k, v in report["fixes"].items()))
    rate = report["images_per_s"]
    lines.append(f"  time        {report['seconds']:.1f} s" + (f", {rate:.0f} images/s" if rate else ""))
    return "\n".join(lines)


def format_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"
