"""Naming rules: keys, member names (cross-checked with webdataset's own splitter), shard and index names."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from webdataset.tariterators import base_plus_ext

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import (
    dedupe_key,
    index_name,
    is_valid_key,
    key_from_source,
    shard_name,
    split_member,
)
from imagenet_stream.format.names import MAX_KEY_LENGTH


@pytest.mark.parametrize("source, key", [
    ("train/n02084071/n02084071_1234.JPEG", "n02084071_1234"),
    ("ILSVRC2012_img_train.tar/n01440764.tar/n01440764_10026.JPEG", "n01440764_10026"),
    ("C:\\data\\val\\ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000001"),
    ("weird name (1).jpg", "weird_name_1"),
    ("dir/", "dir"),
    ("???.jpg", "sample"),
])
def test_key_from_source_keeps_the_image_id(source: str, key: str) -> None:
    assert key_from_source(source) == key


@given(st.text(min_size=0, max_size=300))
def test_key_from_source_is_always_a_valid_key(source: str) -> None:
    assert is_valid_key(key_from_source(source))


@given(st.from_regex(r"[A-Za-z0-9_-]{1,90}", fullmatch=True), st.integers(1, 10**6))
def test_dedupe_key_is_valid_and_differs(key: str, n: int) -> None:
    alt = dedupe_key(key, n)
    assert is_valid_key(alt) and alt != key and alt.endswith(f"-{n}")
    assert alt != dedupe_key(key, n + 1)


@pytest.mark.parametrize("key, ok", [("n01440764_1", True), ("a.b", False), ("a/b", False), ("", False),
                                     ("x" * MAX_KEY_LENGTH, True), ("x" * (MAX_KEY_LENGTH + 1), False)])
def test_is_valid_key(key: str, ok: bool) -> None:
    assert is_valid_key(key) is ok


def test_shard_and_index_names() -> None:
    assert shard_name("train", 7) == "train-000007.tar"
    assert index_name("train-000007.tar") == "train-000007.idx"
    with pytest.raises(ManifestError, match="prefix"):
        shard_name("tr/ain", 0)
    with pytest.raises(ManifestError, match=r"\.tar"):
        index_name("train-000007.zip")


@given(st.from_regex(r"([a-z0-9_]{1,8}/){0,2}[a-z0-9_-]{1,12}(\.[a-z0-9]{1,6}){1,3}", fullmatch=True))
def test_split_member_agrees_with_webdataset(name: str) -> None:
    assert split_member(name) == base_plus_ext(name)


def test_split_member_without_extension() -> None:
    assert split_member("dir.d/KEY") == ("dir.d/KEY", "")
