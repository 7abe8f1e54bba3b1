"""The shipped data against its sources: WordNet 3.0 ``data.noun`` and timm's synset lists.

``make crosscheck-data`` fetches both (Debian's wordnet-base where apt works, timm's wheel into
``.cache/crosscheck/``). Skipped, with the reason, where they are absent, except when
``IMAGENET_STREAM_REQUIRE_CROSSCHECKS=1`` (as ``.ci/run`` sets it): then a missing source fails.
"""
from __future__ import annotations

import functools
import glob
import gzip
import os
import subprocess
import sys
import zipfile
import zlib
from importlib import resources
from pathlib import Path

import pytest

from imagenet_stream.hierarchy import Hierarchy, standard_space, subset_indices

DATA_NOUN = Path("/usr/share/wordnet/data.noun")
REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "build_hierarchy.py"
SHIPPED = resources.files("imagenet_stream.hierarchy").joinpath("data", "wordnet.msgpack.gz")


REQUIRED = os.environ.get("IMAGENET_STREAM_REQUIRE_CROSSCHECKS") == "1"


def _timm_wheel() -> Path | None:
    configured = os.environ.get("IMAGENET_STREAM_TIMM_WHEEL")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    found = sorted(glob.glob(str(REPO / ".cache" / "crosscheck" / "timm-*.whl")) + glob.glob("/tmp/timm-wheel/*.whl"))
    return Path(found[-1]) if found else None


def _needs(present: bool, reason: str):
    """Skip without the source, or fail with the reason when the cross-checks are required (CI)."""
    if present or not REQUIRED:
        return pytest.mark.skipif(not present, reason=reason)

    def fail_instead(test):
        @functools.wraps(test)
        def failing(*args, **kwargs):
            pytest.fail(f"IMAGENET_STREAM_REQUIRE_CROSSCHECKS=1 but {reason}")
        return failing
    return fail_instead


needs_wordnet = _needs(DATA_NOUN.is_file(), f"{DATA_NOUN} not found (make crosscheck-data, or install the "
                                            "Debian/Ubuntu package wordnet-base)")
needs_wheel = _needs(_timm_wheel() is not None, "no timm wheel (make crosscheck-data, or set "
                                                "IMAGENET_STREAM_TIMM_WHEEL)")


def _synset_at(raw: bytes, wnid: str) -> tuple[str, tuple[str, ...]]:
    """(name, sorted parents) of the synset whose line starts at byte ``int(wnid[1:])`` of data.noun."""
    offset = int(wnid[1:])
    line = raw[offset:raw.index(b"\n", offset)].decode("utf-8")
    if offset and raw[offset - 1:offset] != b"\n":
        raise AssertionError(f"{wnid}: byte {offset} is not the start of a line")
    head = line.split(" | ")[0].split(" ")
    assert head[0] == wnid[1:] and head[2] == "n", f"{wnid}: line reads {line[:40]!r}"
    n_words = int(head[3], 16)
    name = ", ".join(head[4 + 2 * k].replace("_", " ") for k in range(n_words))
    pos = 4 + 2 * n_words
    pointers = [head[pos + 1 + 4 * k: pos + 5 + 4 * k] for k in range(int(head[pos]))]
    parents = tuple(sorted("n" + target for symbol, target, ss_type, _ in pointers
                           if symbol in ("@", "@i") and ss_type == "n"))
    return name, parents


@needs_wordnet
def test_every_node_matches_wordnet_parent_by_parent() -> None:
    raw = DATA_NOUN.read_bytes()
    h = Hierarchy.imagenet21k()
    checked = 0
    for wnid in h.node_wnids:  # the 21,841, teddy bear, and all their ancestors
        name, parents = _synset_at(raw, wnid)
        assert h.parents(wnid) == parents, f"{wnid} ({name}): shipped {h.parents(wnid)}, WordNet {parents}"
        assert h.name(wnid) == name, f"{wnid}: shipped name {h.name(wnid)!r}, WordNet {name!r}"
        checked += 1
    assert checked == h.num_nodes and set(standard_space("in22k").wnids) <= set(h.node_wnids)


@needs_wheel
def test_class_lists_match_timm() -> None:
    with zipfile.ZipFile(_timm_wheel()) as zf:
        in21k = zf.read("timm/data/_info/imagenet22k_synsets.txt").decode("ascii").split()
        in1k = zf.read("timm/data/_info/imagenet_synsets.txt").decode("ascii").split()
        ms22k = zf.read("timm/data/_info/imagenet22k_ms_synsets.txt").decode("ascii").split()
    assert standard_space("in21k").wnids == tuple(in21k)
    assert standard_space("in1k").wnids == tuple(in1k)
    assert standard_space("in22k").wnids == tuple(ms22k)  # Microsoft's order, as timm ships it


@needs_wheel
def test_named_spaces_are_the_wheels_lists_entry_by_entry() -> None:
    """Each pretrained head's class order equals timm's list, and the subset indices of ImageNet-A
    and ImageNet-R in in1k equal timm's index files."""
    members = {"in21k-p": "imagenet21k_miil_synsets.txt", "in21k-p-w21": "imagenet21k_miil_w21_synsets.txt",
               "in12k": "imagenet12k_synsets.txt", "in21k-goog": "imagenet21k_goog_synsets.txt",
               "imagenet-a": "imagenet_a_synsets.txt", "imagenet-r": "imagenet_r_synsets.txt"}
    with zipfile.ZipFile(_timm_wheel()) as zf:
        def read(name: str) -> list[str]:
            return zf.read(f"timm/data/_info/{name}").decode("ascii").split()

        for space, member in members.items():
            assert standard_space(space).wnids == tuple(read(member)), space
        for space in ("imagenet-a", "imagenet-r"):
            indices = [int(i) for i in read(f"{space.replace('-', '_')}_indices.txt")]
            assert subset_indices("in1k", space).tolist() == indices
        to_22k = [int(i) for i in read("imagenet21k_goog_to_22k_indices.txt")]
    goog = standard_space("in21k-goog").wnids
    assert [goog[i] for i in to_22k] == list(standard_space("in21k").wnids)  # timm's own map agrees


@needs_wordnet
@needs_wheel
def test_rebuild_reproduces_committed_data(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(TOOL), "--wordnet", str(DATA_NOUN),
                    "--timm-wheel", str(_timm_wheel()), "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    built = (tmp_path / "wordnet.msgpack.gz").read_bytes()
    shipped = SHIPPED.read_bytes()
    assert gzip.decompress(built) == gzip.decompress(shipped), "rebuilt payload differs"
    assert built == shipped, ("payload identical but the gzip stream differs "
                              f"(zlib {zlib.ZLIB_RUNTIME_VERSION}): rebuild with the tool and commit")
