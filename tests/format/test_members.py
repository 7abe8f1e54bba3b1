"""Sample members and their encodings."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet_stream.errors import ShardIntegrityError
from imagenet_stream.format import Sample, decode_label, decode_meta, encode_label, encode_meta

META = {"wnid": "n01440764", "source": "a/b.JPEG", "sha256": "00" * 32, "width": 5, "height": 4}


def test_members_in_order() -> None:
    s = Sample("n01440764_1", b"JPEGDATA", 3, META)
    names = [n for n, _ in s.members()]
    assert names == ["n01440764_1.jpg", "n01440764_1.cls", "n01440764_1.msgpack"]
    assert s.members()[1][1] == b"3" and decode_meta(s.members()[2][1]) == META


@pytest.mark.parametrize("kwargs, match", [
    (dict(key="a.b"), "invalid sample key"),
    (dict(label=-1), "negative"),
    (dict(meta={"wnid": "n01440764"}), "lacks"),
])
def test_invalid_samples(kwargs: dict, match: str) -> None:
    args = dict(key="k", image=b"x", label=0, meta=META) | kwargs
    with pytest.raises(ShardIntegrityError, match=match):
        Sample(**args)


@given(st.integers(0, 2**32 - 1))
def test_label_round_trip(label: int) -> None:
    assert decode_label(encode_label(label)) == label


@pytest.mark.parametrize("bad", [b"", b"x1", b"\xff", b"1.5"])
def test_bad_labels(bad: bytes) -> None:
    with pytest.raises(ShardIntegrityError):
        decode_label(bad)


VALUES = st.one_of(st.integers(-2**63, 2**63 - 1), st.text(), st.binary(),
                   st.lists(st.text(max_size=5), max_size=3))


@given(st.dictionaries(st.text(max_size=10), VALUES, max_size=8))
def test_meta_round_trip(meta: dict) -> None:
    assert decode_meta(encode_meta(meta)) == meta


@pytest.mark.parametrize("bad", [msgpack.packb([1, 2]), b"\xc1", msgpack.packb({1: "int key"})])
def test_bad_meta(bad: bytes) -> None:
    with pytest.raises(ShardIntegrityError):
        decode_meta(bad)
