"""The HTML report, rendered by a real headless Chromium: nothing leaves the file, no console error,
the treemap holds every class and zooms on a click, every rejection reason shows its images, the
near-duplicates and the lineage of a version appear; at 21,841 classes it stays small and fast."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from support.browser import CHROMIUM, Browser

from imagenet_stream.cli import main
from imagenet_stream.curation.duplicates import dedup
from imagenet_stream.format import (
    LABELS_NAME,
    MANIFEST_NAME,
    ClassesInfo,
    LabelsEntry,
    Manifest,
    ShardEntry,
    index_name,
    shard_name,
)
from imagenet_stream.hierarchy import standard_space
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.sharding.demo_tree import make_demo_tree
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import near_copy
from imagenet_stream.visual.page import build_report

needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's "
                                                            "chromium; apt-get install chromium)")
SIZE_CAP = 10_000_000


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> dict:
    """The demo tree (with its quirks) plus one near copy, sharded; a dedup report; a version
    excluding the near copy (so it has a lineage)."""
    root = tmp_path_factory.mktemp("report")
    tree = make_demo_tree(root / "tree", images_per_class=8, seed=0)
    first = sorted((root / "tree" / tree.wnids[3]).glob("*.JPEG"))[0]
    (first.parent / "copy_of_first.JPEG").write_bytes(near_copy(first.read_bytes(), "recompressed", seed=1))
    shard([str(root / "tree")], ShardOptions(out=str(root / "v1"), shard_size=32, workers=0, name="demo"))
    dedup(str(root / "v1"), str(root / "dedup"))
    assert main(["exclude", str(root / "v1"), "--out", str(root / "v2"), "--from-dedup", str(root / "dedup"),
                 "--no-progress"]) == 0
    return {"root": root, "v1": str(root / "v1"), "v2": str(root / "v2"), "dedup": str(root / "dedup")}


@needs_browser
def test_the_report_renders_with_every_panel_and_nothing_leaves_the_file(version, capsys) -> None:
    html = version["root"] / "report.html"
    assert main(["inspect", version["v2"], "--html", str(html), "--dedup", version["dedup"], "--grid", "12"]) == 0
    assert "report:" in capsys.readouterr().out
    manifest = Manifest.load(Store(version["v2"]))
    report = json.loads((Path(version["v1"]) / "report.json").read_text())
    with Browser() as browser:
        page = browser.open(html.as_uri())
        assert page.evaluate("document.body.dataset.ready") == "1"
        # the treemap holds every class with images, and a click on a tile opens it
        present = sum(1 for c in manifest.class_counts if c)
        assert page.evaluate("document.getElementById('treemap').dataset.classes") == str(present)
        before = page.evaluate("document.getElementById('treemap').dataset.view")
        depth = page.evaluate("document.querySelectorAll('#crumbs .crumb').length")
        target = page.evaluate("(() => { const t = document.querySelector('#treemap > .tile:not(.leaf)');"
                               " t.click(); return t.dataset.wnid; })()")
        assert page.evaluate("document.getElementById('treemap').dataset.view") == target != before
        assert page.evaluate("document.querySelectorAll('#crumbs .crumb').length") == depth + 1
        page.evaluate("document.querySelector('#crumbs .crumb').click()")  # back to the top
        assert page.evaluate("document.getElementById('treemap').dataset.view") == ""
        # every rejection reason shows its examples; those with image bytes as images
        shown = page.evaluate("Object.fromEntries([...document.querySelectorAll('.reason')].map(r => "
                              "[r.dataset.reason, [r.querySelectorAll('figure').length, r.querySelectorAll('img').length]]))")
        assert set(shown) == set(report["rejected"]) and all(figures >= 1 for figures, _ in shown.values())
        for reason in ("truncated", "duplicate"):
            assert shown[reason][1] >= 1, f"{reason}: no thumbnail"
        assert page.evaluate("document.querySelectorAll('#samples img').length") == 12
        assert page.evaluate("document.querySelectorAll('#dedup .pair img').length") >= 2
        assert page.evaluate("document.querySelectorAll('#lineage svg rect').length") == 2
        assert page.evaluate("document.querySelectorAll('#shards svg').length") == 2
        # nothing but the file itself was requested; nothing went wrong
        assert [u for u in page.requests if not u.startswith(("file://", "data:"))] == []
        assert page.errors == []


def synthetic_21k(folder: Path, samples: int = 1_420_000, per_shard: int = 1000) -> Manifest:
    """index.json + labels.bin of a long-tailed dataset over all 21,841 classes (shards never written)."""
    wnids = standard_space("in21k").wnids
    sizes = 1.0 / np.arange(1, len(wnids) + 1) ** 0.6
    counts = np.maximum(1, np.floor(sizes / sizes.sum() * (samples - len(wnids)))).astype(np.int64)
    counts[0] += samples - counts.sum()
    n_shards = samples // per_shard
    fake = hashlib.sha256(b"never read").hexdigest()
    shards = tuple(ShardEntry(name=shard_name("train", s), num_samples=per_shard, bytes=per_shard * 110_000,
                              sha256=fake, index=index_name(shard_name("train", s)), index_bytes=40_000,
                              index_sha256=fake) for s in range(n_shards))
    labels = np.repeat(np.arange(len(wnids), dtype=np.uint16), counts).tobytes()
    (folder / LABELS_NAME).write_bytes(labels)
    manifest = Manifest(name="in21k-sim", version="1", created="2026-12-01T00:00:00Z", tool="test",
                        classes=ClassesInfo("in21k", wnids), num_samples=samples,
                        class_counts=tuple(int(c) for c in counts), shards=shards,
                        labels=LabelsEntry(LABELS_NAME, "<u2", len(labels), hashlib.sha256(labels).hexdigest()))
    (folder / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest


def test_at_21841_classes_the_report_is_small_and_quick(tmp_path) -> None:
    synthetic_21k(tmp_path)
    started = time.perf_counter()
    html = build_report(str(tmp_path), grid=0)
    seconds = time.perf_counter() - started
    assert len(html.encode()) < SIZE_CAP and seconds < 30, (len(html), seconds)
    (tmp_path / "r.html").write_text(html)
    if CHROMIUM is None:
        pytest.skip("no chromium to render it (the size and time were checked)")
    with Browser() as browser:
        page = browser.open((tmp_path / "r.html").as_uri())
        assert page.evaluate("document.getElementById('treemap').dataset.classes") == "21841"
        assert page.evaluate("document.querySelectorAll('#treemap .tile').length") > 3
        assert page.errors == []


def test_link_rot_lists_the_worst_synsets_first() -> None:
    from imagenet_stream.visual.panels import link_rot

    report = {"downloads": {"per_synset": {"n01440764": {"ok": 9, "total": 10, "rate": 0.9},
                                           "n01443537": {"ok": 2, "total": 10, "rate": 0.2}}}}
    html = link_rot(report, {"n01443537": "goldfish"})
    assert html.index("n01443537") < html.index("n01440764") and "80% gone" in html and "goldfish" in html
    assert link_rot({}, {}) == "" and link_rot(None, {}) == ""
