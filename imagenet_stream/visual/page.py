"""One self-contained HTML report of a dataset (``imagenet-stream inspect DATASET --html FILE``).

Everything is inline: the styles, one small script of our own (the zoomable treemap,
``report.js``), the charts as SVG and the thumbnails as ``data:`` JPEGs, so the file opens from a
laptop's disk or an object store's web view with no network access. It reads ``index.json``,
``report.json`` (when the sharder wrote one), an optional dedup report and a bounded number of
images (the sample grid, duplicates' copies): at 21,841 classes it is about 1-2 MB.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from html import escape
from importlib import resources
from typing import Any

from imagenet_stream.curation.duplicates import read_report
from imagenet_stream.format import Manifest
from imagenet_stream.format.names import REPORT_NAME
from imagenet_stream.hierarchy.graph import short_names
from imagenet_stream.storage import Store
from imagenet_stream.visual import panels
from imagenet_stream.visual.class_tree import class_tree
from imagenet_stream.visual.sample_images import SampleImages

GRID_SAMPLES = 24


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _json_script(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` can close it)."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def build_report(url: str, storage_options: Mapping[str, Any] | None = None, *, dedup: str | None = None,
                 grid: int = GRID_SAMPLES, seed: int = 0) -> str:
    """The HTML text of the report of the dataset at ``url`` (``dedup``: a local dedup report folder)."""
    store = Store(url, storage_options)
    manifest = Manifest.load(store)
    beside_shards = store.elsewhere(manifest.shards_at)  # a version's report.json is its shards' run's
    report = json.loads(beside_shards.read(REPORT_NAME)) if beside_shards.exists(REPORT_NAME) else None
    rows = read_report(dedup)[1] if dedup else None
    images = SampleImages(store, manifest)
    names = short_names()
    tree = class_tree(manifest.classes.wnids, manifest.class_counts)
    sections = [
        panels.summary_cards(manifest, store.display_url),
        panels.class_counts(manifest),
        panels.sample_grid(images, names, grid, seed),
        panels.rejections(report, images),
        panels.near_duplicates(rows, images, store.url, storage_options),
        panels.link_rot(report, names),
        panels.lineage(manifest),
        panels.shard_sizes(manifest),
    ]
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        # nothing may leave the file: no fetch, no external image, script or style
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{escape(manifest.name)} "
        f"{escape(manifest.version)} · imagenet-stream report</title><style>{_asset('report.css')}</style></head>"
        f"<body><header><h1>{escape(manifest.name)} {escape(manifest.version)}</h1>"
        f"<p>imagenet-stream report · {escape(created)} · made by {escape(manifest.tool)}</p></header><main>"
        + "".join(sections)
        + f"</main><script type=\"application/json\" id=\"tree-data\">{_json_script(tree)}</script>"
        f"<script>{_asset('report.js')}</script></body></html>\n")


def write_report(url: str, path: str, storage_options: Mapping[str, Any] | None = None, **kwargs: Any) -> int:
    """Write :func:`build_report` to the local file ``path``; its size in bytes."""
    html = build_report(url, storage_options, **kwargs).encode("utf-8")
    with open(path, "wb") as f:
        f.write(html)
    return len(html)


__all__ = ["build_report", "write_report"]
