"""tools/build_hierarchy.py on a tiny hand-made data.noun and timm-like wheel; package import hygiene."""
from __future__ import annotations

import gzip
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import msgpack
import numpy as np
import pytest

from imagenet_stream.hierarchy.graph import WordNetGraph

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_hierarchy", REPO / "tools" / "build_hierarchy.py")
tool = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("build_hierarchy", tool)
_spec.loader.exec_module(tool)

# key: (lemmas, [(pointer symbol, target key, target pos)])
TINY = {
    "entity": (["entity"], [("~", "object", "n")]),
    "object": (["object", "physical_object"], [("@", "entity", "n"), ("~", "star", "n")]),
    "star": (["star"], [("@", "object", "n"), ("+", "object", "v")]),
    "sun": (["sun", "Sun"], [("@i", "star", "n"), ("%p", "object", "n")]),
    "toy": (["toy"], [("@", "object", "n")]),
    "teddy": (["teddy", "teddy_bear"], [("@", "toy", "n"), ("@", "star", "n")]),
    "orphan": (["orphan"], []),
}


def _data_noun(synsets: dict = TINY) -> tuple[bytes, dict[str, str]]:
    """A data.noun whose offsets are right; returns (bytes, key -> wnid)."""
    header = b"  1 This is a licence header line.  \n  2 \n"
    padding = b"  3 padding so that entity lands at byte 1740, as in WordNet 3.0"
    header += padding.ljust(1739 - len(header)) + b"\n"

    def render(offsets: dict[str, int]) -> list[bytes]:
        lines = []
        for key, (words, pointers) in synsets.items():
            w = " ".join(f"{word} 0" for word in words)
            p = " ".join(f"{sym} {offsets[t]:08d} {pos} 0000" for sym, t, pos in pointers)
            line = f"{offsets[key]:08d} 03 n {len(words):02x} {w} {len(pointers):03d} {p} | gloss {key}  \n"
            lines.append(line.replace("  |", " |").encode())
        return lines

    lines = render({k: 0 for k in synsets})
    offsets, at = {}, len(header)
    for key, line in zip(synsets, lines):
        offsets[key], at = at, at + len(line)
    assert offsets["entity"] == 1740
    return header + b"".join(render(offsets)), {k: f"n{v:08d}" for k, v in offsets.items()}


def _wheel(path: Path, in21k: list[str], in1k: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(tool.IN21K_MEMBER, "\n".join(in21k) + "\n")
        zf.writestr(tool.IN1K_MEMBER, "\n".join(in1k) + "\n")
    return path


def test_parse_data_noun_reads_names_and_parent_pointers() -> None:
    raw, wnid = _data_noun()
    synsets = tool.parse_data_noun(raw)
    assert set(synsets) == set(wnid.values())
    assert synsets[wnid["object"]].name == "object, physical object"
    assert synsets[wnid["sun"]].parents == (wnid["star"],)  # @i counts, %p does not
    assert synsets[wnid["star"]].parents == (wnid["object"],)  # a verb pointer does not
    assert synsets[wnid["teddy"]].parents == tuple(sorted([wnid["toy"], wnid["star"]]))


def test_parse_rejects_wrong_offset() -> None:
    raw, _ = _data_noun()
    broken = raw.replace(b"  2 \n", b"  2 x\n", 1)  # shifts every offset by one byte
    with pytest.raises(ValueError, match="states offset"):
        tool.parse_data_noun(broken)


def test_build_keeps_classes_and_ancestors_only(tmp_path: Path) -> None:
    raw, wnid = _data_noun()
    (tmp_path / "data.noun").write_bytes(raw)
    in21k = sorted([wnid["sun"], wnid["object"]])
    wheel = _wheel(tmp_path / "t.whl", in21k, [wnid["teddy"]])
    out = tool.build(tmp_path / "data.noun", wheel, tmp_path / "out")
    graph = WordNetGraph(msgpack.unpackb(gzip.decompress(out.read_bytes()), raw=False))
    kept = {k for k in TINY if k != "orphan"}
    assert set(graph.node_wnids) == {wnid[k] for k in kept}  # orphan is not needed
    assert [graph.node_wnids[i] for i in graph.in21k_nodes] == in21k
    teddy = graph.node_index(wnid["teddy"])
    assert graph.max_depth[teddy] == 3 and graph.depth[teddy] == 3  # via star or toy, both at 2
    assert graph.node_wnids[graph.tree_parent[teddy]] == min(wnid["star"], wnid["toy"])
    assert np.array_equal(graph.ancestors(teddy), sorted(graph.node_index(wnid[k]) for k in
                                                         ("entity", "object", "star", "toy")))
    again = tool.build(tmp_path / "data.noun", wheel, tmp_path / "out2")
    assert again.read_bytes() == out.read_bytes()


def test_build_rejects_unknown_class_and_second_root(tmp_path: Path) -> None:
    raw, wnid = _data_noun()
    (tmp_path / "data.noun").write_bytes(raw)
    with pytest.raises(ValueError, match="n09999999"):
        tool.build(tmp_path / "data.noun", _wheel(tmp_path / "a.whl", ["n09999999"], [wnid["sun"]]), tmp_path)
    with pytest.raises(ValueError, match=wnid["orphan"]):
        tool.build(tmp_path / "data.noun", _wheel(tmp_path / "b.whl", [wnid["orphan"]], [wnid["sun"]]),
                   tmp_path)
    with pytest.raises(ValueError, match="not sorted"):
        tool.build(tmp_path / "data.noun", _wheel(tmp_path / "c.whl", [wnid["sun"], wnid["object"]], []),
                   tmp_path)


def test_licence_ships_next_to_the_data() -> None:
    shipped = REPO / "imagenet_stream" / "hierarchy" / "data" / "LICENSE-WORDNET-3.0.txt"
    assert shipped.read_bytes() == (REPO / "LICENSES" / "WORDNET-3.0.txt").read_bytes()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in shipped.read_text()


def test_hierarchy_imports_no_torch_or_fsspec() -> None:
    code = ("import sys; import imagenet_stream.hierarchy as h; h.Hierarchy.imagenet1k(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fsspec', 's3fs')); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
