"""The report's sections as HTML fragments, each from the manifest, ``report.json``, a dedup report
or a bounded number of image reads; a section whose data does not exist says so in one line."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from imagenet_stream.format import Manifest
from imagenet_stream.storage import Store
from imagenet_stream.thumbnails import thumbnail_b64
from imagenet_stream.units import format_size
from imagenet_stream.visual.charts import histogram, lineage_graph, loglog_curve
from imagenet_stream.visual.sample_images import SampleImages

log = logging.getLogger(__name__)

EXAMPLES_SHOWN = 6     # rejected images per reason
PAIRS_SHOWN = 12       # near-duplicate pairs
SYNSETS_SHOWN = 40     # rows of the link-rot table


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/jpeg;base64,{b64}" alt="{escape(alt)}" loading="lazy">'


def _placeholder(reason: str, detail: str) -> str:
    """A tile for a rejected file that is no image at all (empty, not an image): the reason, drawn."""
    return ('<svg viewBox="0 0 112 112" role="img" aria-label="no image"><rect width="112" height="112" fill="#f6e8e8"/>'
            '<path d="M30 30 L82 82 M82 30 L30 82" stroke="#d99" stroke-width="6"/>'
            f'<text x="56" y="104" font-size="10" text-anchor="middle" fill="#933">{escape(reason[:20])}</text>'
            f'<title>{escape(detail)}</title></svg>')


def _figure(picture: str, caption: str, title: str = "") -> str:
    return f'<figure title="{escape(title)}">{picture}<figcaption>{escape(caption)}</figcaption></figure>'


def summary_cards(manifest: Manifest, url: str) -> str:
    m = manifest
    present = sum(1 for c in m.class_counts if c)
    cards = [("samples", f"{m.num_available:,}"), ("classes", f"{present:,} of {m.classes.num_classes:,}"),
             ("shards", f"{len(m.shards):,}"), ("bytes", format_size(m.total_bytes)),
             ("version", f"{m.name} {m.version}"), ("class space", m.classes.space)]
    if m.exclusions is not None:
        cards.append(("excluded", f"{m.num_samples - m.num_available:,}"))
    if m.extra.get("licence"):
        cards.append(("licence", str(m.extra["licence"])))
    html = '<div class="cards">' + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                                           for k, v in cards) + "</div>"
    terms = m.extra.get("terms")
    html += (f'<div class="terms"><b>Terms of use.</b> {escape(str(terms))}</div>' if terms
             else '<p class="empty">No terms of use declared (imagenet-stream shard --terms).</p>')
    return f'<section id="summary"><h2>{escape(url)}</h2>{html}</section>'


def class_counts(manifest: Manifest) -> str:
    """The treemap's frame (filled by report.js) and the sorted class-size curve."""
    curve = loglog_curve(manifest.class_counts, "images per class, largest first (log-log)")
    return ('<section id="classes"><h2>Classes over the WordNet hierarchy</h2>'
            '<p>Tile area = images. Click a tile to open it; the path above takes you back up.</p>'
            '<div id="crumbs"></div><div class="tree"><div id="treemap"></div><div id="node-detail"></div></div>'
            f'<div class="charts">{curve}</div></section>')


def rejections(report: Mapping[str, Any] | None, images: SampleImages) -> str:
    if report is None:
        return '<section id="rejections"><h2>Rejected images</h2><p class="empty">No report.json.</p></section>'
    parts = []
    for reason, entry in (report.get("rejected") or {}).items():
        figures = []
        for example in (entry.get("examples") or [])[:EXAMPLES_SHOWN]:
            thumb = example.get("thumb")
            if thumb is None and example.get("sample") is not None:
                thumb = _sample_thumb(images, int(example["sample"]))
            picture = _img(thumb, example.get("key", "")) if thumb else _placeholder(reason, example.get("detail", ""))
            figures.append(_figure(picture, f"{example.get('key', '')}: {example.get('detail', '')}",
                                   example.get("source", "")))
        parts.append(f'<div class="reason" data-reason="{escape(reason)}"><h3>{escape(reason)} · '
                     f'{int(entry.get("count", 0)):,}</h3><div class="thumbs">{"".join(figures)}</div></div>')
    fixes = report.get("fixes") or {}
    fixed = ", ".join(f"{escape(k)} {v:,}" for k, v in fixes.items())
    body = "".join(parts) or '<p class="empty">Nothing was rejected.</p>'
    return (f'<section id="rejections"><h2>Rejected images: {int(report.get("rejected_total", 0)):,} of '
            f'{int(report.get("seen", 0)):,} seen</h2>{body}'
            + (f"<p>Normalized and kept: {fixed}.</p>" if fixed else "") + "</section>")


def _sample_thumb(images: SampleImages, sample: int) -> str | None:
    try:
        return thumbnail_b64(images.read(sample).data)
    except (OSError, IndexError, ValueError) as exc:
        log.warning("no thumbnail of sample %d: %s", sample, exc)
        return None


def near_duplicates(rows: Sequence[Mapping[str, str]] | None, images: SampleImages, url: str,
                    storage_options: Mapping[str, Any] | None) -> str:
    title = "<h2>Near-duplicates and leakage</h2>"
    if rows is None:
        return (f'<section id="dedup">{title}<p class="empty">No dedup report given (imagenet-stream dedup DATASET '
                '--out DIR, then inspect --dedup DIR).</p></section>')
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    others: dict[str, SampleImages] = {}
    pairs = []
    for row in sorted(rows, key=lambda r: (int(r["distance"]), r["key_a"]))[:PAIRS_SHOWN]:
        sides = []
        for side in ("a", "b"):
            source = images if row[f"dataset_{side}"] in ("", url) else _other(others, row[f"dataset_{side}"],
                                                                                 storage_options)
            thumb = _sample_thumb(source, int(row[f"index_{side}"])) if source is not None else None
            picture = _img(thumb, row[f"key_{side}"]) if thumb else _placeholder("not readable", row[f"dataset_{side}"])
            sides.append(_figure(picture, row[f"key_{side}"], row[f"dataset_{side}"]))
        pairs.append(f'<div class="pair" data-kind="{escape(row["kind"])}">{sides[0]}<b>{int(row["distance"])} bits'
                     f'<br>{escape(row["kind"])}</b>{sides[1]}</div>')
    counts = ", ".join(f"{k}: {v:,} pairs" for k, v in sorted(kinds.items())) or "no pairs"
    return f'<section id="dedup">{title}<p>{escape(counts)}</p><div class="thumbs">{"".join(pairs)}</div></section>'


def _other(cache: dict[str, SampleImages], url: str, storage_options: Mapping[str, Any] | None) -> SampleImages | None:
    if url not in cache:
        try:
            store = Store(url, storage_options)
            cache[url] = SampleImages(store, Manifest.load(store))
        except (OSError, ValueError) as exc:
            log.warning("cannot open %s for its duplicates' thumbnails: %s", url, exc)
            return None
    return cache[url]


def link_rot(report: Mapping[str, Any] | None, names: Mapping[str, str]) -> str:
    downloads = (report or {}).get("downloads")
    if not downloads:
        return ""
    per = downloads.get("per_synset") or {}
    worst = sorted(per.items(), key=lambda kv: (kv[1]["rate"], kv[0]))[:SYNSETS_SHOWN]
    rows = "".join(f'<tr><td><code>{escape(w)}</code></td><td>{escape(names.get(w, ""))}</td><td>{v["ok"]:,} / '
                   f'{v["total"]:,}</td><td><span class="bar" style="width:{round(80 * (1 - v["rate"]))}px"></span> '
                   f'{100 * (1 - v["rate"]):.0f}% gone</td></tr>' for w, v in worst)
    return ('<section id="linkrot"><h2>Link rot per synset (worst first)</h2>'
            f'<table><tr><th>wnid</th><th>name</th><th>fetched</th><th>lost</th></tr>{rows}</table></section>')


def lineage(manifest: Manifest) -> str:
    steps = [step for step in manifest.extra.get("lineage") or [] if isinstance(step, dict)]
    if not steps:
        return ""
    boxes = [(f"{steps[0].get('parent_name', '?')} {steps[0].get('parent_version', '')}", "")]
    for n, step in enumerate(steps):
        removed = ", ".join(f"{r} {c:,}" for r, c in (step.get("excluded") or {}).items()) or "nothing"
        name = f"{manifest.name} {manifest.version}" if n == len(steps) - 1 else (
            f"{steps[n + 1].get('parent_name', '?')} {steps[n + 1].get('parent_version', '')}")
        boxes.append((name, f"− {removed}"))
    return f'<section id="lineage"><h2>Version lineage</h2>{lineage_graph(boxes)}</section>'


def shard_sizes(manifest: Manifest) -> str:
    sizes = [s.bytes for s in manifest.shards]
    samples = [s.num_samples for s in manifest.shards]
    return ('<section id="shards"><h2>Shards</h2><div class="charts">'
            f'{histogram(sizes, "shard sizes", "bytes", fmt=format_size)}'
            f'{histogram(samples, "samples per shard", "samples")}</div></section>')


def sample_grid(images: SampleImages, names: Mapping[str, str], count: int, seed: int) -> str:
    wnids = images.manifest.classes.wnids
    figures = []
    for sample in images.random_ids(count, seed):
        try:
            item = images.read(sample)
        except (OSError, IndexError, ValueError) as exc:
            log.warning("sample %d not readable for the grid: %s", sample, exc)
            continue
        thumb = thumbnail_b64(item.data)
        if thumb is None:
            continue
        wnid = wnids[item.label] if 0 <= item.label < len(wnids) else "?"
        figures.append(_figure(_img(thumb, item.key), f"{names.get(wnid, wnid)}", f"{item.key} {wnid}"))
    return (f'<section id="samples"><h2>{len(figures)} random samples (seed {seed})</h2>'
            f'<div class="thumbs">{"".join(figures)}</div></section>')


__all__ = ["class_counts", "link_rot", "lineage", "near_duplicates", "rejections", "sample_grid", "shard_sizes",
           "summary_cards"]
