"""Opt-out registries: parsed strictly, applied by ``shard --opt-out`` (by key and by source sha256),
each match rejected with its reason and counted in the report."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagenet_stream.cli import main
from imagenet_stream.curation import parse_registry
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import REPORT_NAME, Manifest, SideIndex
from imagenet_stream.synthetic import make_jpeg


def test_registry_lines() -> None:
    digest = "AB" * 32
    reg = parse_registry(f"# requests\nn01440764_3\nsha256:{digest}\ttakedown\n\nn01440764_3\tother\n")
    assert reg.keys == {"n01440764_3": "opt_out"} and reg.sha256 == {digest.lower(): "takedown"}
    assert len(reg) == 2 and reg.digest() == parse_registry(f"n01440764_3\nsha256:{digest}\ttakedown").digest()
    with pytest.raises(ConfigError, match="line 1: a sha256 entry needs 64 hex"):
        parse_registry("sha256:abc")
    with pytest.raises(ConfigError, match="line 2: a reason"):
        parse_registry("a\nb\tnot a word!")
    with pytest.raises(ConfigError, match="line 1: expected KEY"):
        parse_registry("two words")


def test_shard_rejects_registered_images_with_their_reasons(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    images = {f"n01440764_{i}": make_jpeg(48, 40, seed=i) for i in range(8)}
    for key, data in images.items():
        (src / f"{key}.JPEG").write_bytes(data)
    registry = tmp_path / "optout.txt"
    registry.write_text(f"n01440764_1\nsha256:{hashlib.sha256(images['n01440764_5']).hexdigest()}\ttakedown\n"
                        "n09999999_1\n")
    out = tmp_path / "ds"
    assert main(["shard", str(tmp_path / "src"), "--out", str(out), "--workers", "2", "--no-progress",
                 "--opt-out", str(registry)]) == 0
    report = json.loads((out / REPORT_NAME).read_text())
    assert {r: v["count"] for r, v in report["rejected"].items()} == {"opt_out": 1, "takedown": 1}
    m = Manifest.from_json((out / "index.json").read_text())
    keys = {k for s in m.shards for k in SideIndex.from_bytes((out / s.index).read_bytes()).keys}
    assert keys == set(images) - {"n01440764_1", "n01440764_5"}
    assert main(["shard", str(tmp_path / "src"), "--out", str(tmp_path / "x"), "--no-progress",
                 "--opt-out", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the registry" in capsys.readouterr().err
