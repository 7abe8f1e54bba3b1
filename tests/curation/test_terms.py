"""Terms of use and licence: from ``shard --terms/--licence`` into index.json, shown by ``inspect``,
exposed as ``ds.terms``, and kept by versions made with ``exclude``."""
from __future__ import annotations

from pathlib import Path

from imagenet_stream.cli import main
from imagenet_stream.curation import exclude
from imagenet_stream.format import MANIFEST_NAME, Manifest
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import make_jpeg

TERMS = ("Researcher shall use the Database only for non-commercial research and educational purposes.\n"
         "Princeton University and Stanford University make no representations or warranties.")


def test_terms_and_licence_travel_from_the_sharder_to_the_streamer(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    for n in range(6):
        (src / f"n01440764_{n}.JPEG").write_bytes(make_jpeg(48, 40, seed=n))
    (tmp_path / "terms.txt").write_text(TERMS + "\n")
    out = tmp_path / "ds"
    assert main(["shard", str(tmp_path / "src"), "--out", str(out), "--workers", "0", "--no-progress",
                 "--terms", str(tmp_path / "terms.txt"), "--licence", "research only"]) == 0
    m = Manifest.from_json((out / MANIFEST_NAME).read_text())
    assert m.extra["terms"] == TERMS and m.extra["licence"] == "research only"
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "licence   research only" in shown and "terms     Researcher shall use" in shown
    assert "          Princeton University" in shown
    assert ImageNetStream(str(out)).terms == TERMS
    exclude(str(out), str(tmp_path / "v2"), keys={"n01440764_0": "opt_out"})
    assert ImageNetStream(str(tmp_path / "v2")).terms == TERMS  # a version keeps its parent's terms

    plain = tmp_path / "plain"
    assert main(["shard", str(tmp_path / "src"), "--out", str(plain), "--workers", "0", "--no-progress",
                 "--terms", "inline terms"]) == 0
    assert ImageNetStream(str(plain)).terms == "inline terms"
    both = ImageNetStream([str(out), str(plain)])
    assert both.terms == {str(out): TERMS, str(plain): "inline terms"}
