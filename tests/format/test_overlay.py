"""The exclusion overlay: ids or a bitmap, whichever is smaller, read back exactly and checked."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import EXCLUSIONS_NAME, ClassesInfo, Manifest, ShardEntry
from imagenet_stream.format.manifest import ExclusionsEntry
from imagenet_stream.format.overlay import encode_exclusions, load_exclusions


class _Files(dict):
    def read(self, name: str) -> bytes:
        return self[name]

    def url_of(self, name: str) -> str:
        return f"mem/{name}"


def _manifest(n: int, data: bytes, dtype: str, count: int) -> Manifest:
    sha = hashlib.sha256(b"x").hexdigest()
    return Manifest(name="t", version="1", created="2026-01-01T00:00:00Z", tool="t",
                    classes=ClassesInfo("custom:t", ("n01440764",)), num_samples=n, class_counts=(n - count,),
                    shards=(ShardEntry("train-000000.tar", n, 1024, sha, "train-000000.idx", 10, sha),),
                    format_version=2, exclusions=ExclusionsEntry(EXCLUSIONS_NAME, dtype, count, len(data),
                                                                 hashlib.sha256(data).hexdigest(), {"x": count}))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_ids_or_bits_round_trip(n, fraction, seed) -> None:
    rng = np.random.default_rng(seed)
    ids = np.flatnonzero(rng.random(n) < fraction)
    data, dtype = encode_exclusions(ids, n)
    assert dtype == ("bits" if (n + 7) // 8 < ids.size * 4 else "<u4")  # the smaller encoding
    assert len(data) == ((n + 7) // 8 if dtype == "bits" else ids.size * 4)
    back = load_exclusions(_Files({EXCLUSIONS_NAME: data}), _manifest(n, data, dtype, ids.size))
    assert back.tolist() == ids.tolist()


def test_a_bitmap_with_bits_past_the_end_or_a_wrong_count_is_refused() -> None:
    n = 20
    data, dtype = encode_exclusions(np.arange(n), n)
    assert dtype == "bits" and len(data) == 3
    bad = bytes([0xFF, 0xFF, 0xFF])  # bits 20..23 set: past the dataset
    with pytest.raises(ManifestError, match="past the dataset"):
        load_exclusions(_Files({EXCLUSIONS_NAME: bad}), _manifest(n, bad, "bits", n))
    manifest = _manifest(n, data, "bits", n)
    wrong = replace(manifest, class_counts=(1,), exclusions=replace(manifest.exclusions, count=n - 1,
                                                                   reasons={"x": n - 1}))
    with pytest.raises(ManifestError, match="ids"):
        load_exclusions(_Files({EXCLUSIONS_NAME: data}), wrong)
