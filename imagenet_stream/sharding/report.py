"""The sharding report (``report.json``): what was kept, what was rejected and why. Printed by the CLI.

Built by :mod:`.finalize` from the done-markers and the plan, so it is the same for every run of the
same plan, resumed or not; how long a run took is the CLI's to print, not the report's to store.
"""
from __future__ import annotations

from typing import Any

from imagenet_stream.sharding.records import Rejected, SourceRecord, TooLarge
from imagenet_stream.thumbnails import thumbnail_b64
from imagenet_stream.units import format_size

MAX_EXAMPLES = 10
_THUMB_SOURCE_BYTES = 32 << 20  # a larger rejected file gets no thumbnail


def rejection_example(rejected: Rejected, loaded: object) -> dict[str, str]:
    """``{key, source, detail[, thumb]}`` of a rejected record: ``thumb`` is a small base64 JPEG of
    what was rejected (the part of a truncated image that arrived), when its bytes decode at all."""
    example = {"key": rejected.key, "source": rejected.source, "detail": rejected.detail}
    if isinstance(loaded, SourceRecord):
        try:
            thumb = thumbnail_b64(loaded.load(max_bytes=_THUMB_SOURCE_BYTES))
        except (OSError, ValueError, TooLarge):
            thumb = None
        if thumb:
            example["thumb"] = thumb
    return example


def format_report(report: dict[str, Any], seconds: float | None = None) -> str:
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
    lines += format_downloads(report.get("downloads"))
    votes = report.get("votes")
    if votes:
        lines.append(f"  votes       kept {votes['kept']} with a yes majority of >= {votes['min_votes']} votes; "
                     f"{votes['too_few_votes']} with too few votes, {votes['voted_out']} voted out ({votes['source']})")
    if report["fixes"]:
        lines.append("  normalized  " + ", ".join(f"{k} {v}" for k, v in report["fixes"].items()))
    if seconds is not None and seconds > 0:
        lines.append(f"  time        {seconds:.1f} s, {report['seen'] / seconds:.0f} images/s")
    return "\n".join(lines)


def format_curation(report: dict[str, Any]) -> list[str]:
    """What ``inspect`` shows of a sharding report: rejections by reason, fixes, votes, downloads."""
    lines = []
    rejected = ", ".join(f"{reason} {entry['count']}" for reason, entry in report.get("rejected", {}).items())
    lines.append(f"sharded   {report.get('kept')} kept of {report.get('seen')} seen; rejected: {rejected or 'none'}")
    if report.get("fixes"):
        lines.append("          fixes: " + ", ".join(f"{k} {v}" for k, v in report["fixes"].items()))
    votes = report.get("votes")
    if votes:
        lines.append(f"votes     kept {votes['kept']} (>= {votes['min_votes']} votes, yes majority); "
                     f"{votes['too_few_votes']} too few votes, {votes['voted_out']} voted out")
    return lines + format_downloads(report.get("downloads"), label="{:<10}")


def format_downloads(downloads: dict[str, Any] | None, worst: int = 5, label: str = "  {:<12}") -> list[str]:
    """The download lines of a URL list run: success rate, failures by class, link rot's worst synsets
    (``label`` formats each line's heading)."""
    if not downloads:
        return []
    urls = downloads["urls"]
    errors = ", ".join(f"{k} {v}" for k, v in list(downloads["errors"].items())[:6])
    lines = [label.format("downloads") + f"{downloads['success']} of {urls} URLs ({downloads['success_rate']:.1%}); "
             f"{downloads['failed_to_download']} failed ({errors or 'none'}), "
             f"{downloads['skipped_by_robots']} skipped by robots tags, {downloads['rejected']} rejected after download"]
    synsets = [(v["rate"], w, v["total"]) for w, v in downloads["per_synset"].items()]
    if synsets:
        shown = ", ".join(f"{w} {rate:.0%} of {total}" for rate, w, total in sorted(synsets)[:worst])
        lines.append(label.format("link rot") + f"success per synset from {min(synsets)[0]:.0%} to {max(synsets)[0]:.0%}; "
                     f"worst: {shown}")
    return lines
