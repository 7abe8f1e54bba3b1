"""Class spaces: standard definitions, custom lists from files, choose_space."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import SourceError
from imagenet_stream.format import wnids_sha256
from imagenet_stream.hierarchy import (
    NAMED_SPACES,
    STANDARD_SPACES,
    ClassSpace,
    choose_space,
    is_known_wnid,
    load_space,
    standard_space,
)

TEDDY = "n04399382"
IN1K = standard_space("in1k")
IN21K = standard_space("in21k")
IN22K = standard_space("in22k")


def test_standard_sizes_and_ids() -> None:
    assert STANDARD_SPACES[:3] == ("in1k", "in21k", "in22k") and STANDARD_SPACES[3:] == NAMED_SPACES
    sizes = [(s.id, len(s)) for s in (IN1K, IN21K, IN22K)]
    assert sizes == [("in1k", 1000), ("in21k", 21841), ("in22k", 21842)]
    named = {name: len(standard_space(name)) for name in NAMED_SPACES}
    assert named == {"in21k-p": 11221, "in21k-p-w21": 10450, "in12k": 11821, "in21k-goog": 21843,
                     "imagenet-a": 200, "imagenet-r": 200}
    assert all(s.is_standard for s in (IN1K, IN21K, IN22K))


def test_in1k_order() -> None:
    assert IN1K.index("n01440764") == 0 and IN1K.wnids[0] == "n01440764"
    assert IN1K.index(TEDDY) == 850 and IN1K.wnids[850] == TEDDY
    assert list(IN1K.wnids) == sorted(IN1K.wnids)


def test_in21k_sorted_without_teddy_bear() -> None:
    assert list(IN21K.wnids) == sorted(IN21K.wnids)
    assert TEDDY not in IN21K
    assert set(IN1K.wnids) - set(IN21K.wnids) == {TEDDY}


def test_in22k_is_microsoft_order() -> None:
    assert IN22K.wnids[:1000] == IN1K.wnids
    assert all(IN22K.index(w) == i for i, w in enumerate(IN1K.wnids))
    rest = IN22K.wnids[1000:]
    assert list(rest) == sorted(rest)
    assert set(IN22K.wnids) == set(IN21K.wnids) | {TEDDY}


def test_index_keyerror_names_wnid() -> None:
    with pytest.raises(KeyError, match="n09999999"):
        IN1K.index("n09999999")
    with pytest.raises(KeyError, match="n02084071"):
        IN1K.index("n02084071")  # dog: in the graph, not an ILSVRC class
    assert "n02084071" not in IN1K and 3 not in IN1K and [] not in IN1K


def test_sha256_matches_manifest_checksum() -> None:
    assert IN22K.sha256 == wnids_sha256(IN22K.wnids)
    assert IN1K.sha256 != IN22K.sha256
    assert repr(IN22K) == f"ClassSpace(id='in22k', classes=21842, sha256={IN22K.sha256[:12]}...)"


def test_unknown_standard_name() -> None:
    with pytest.raises(SourceError, match="in42k"):
        standard_space("in42k")
    with pytest.raises(ValueError, match="in42k"):
        load_space("in42k")


def test_classspace_validation() -> None:
    with pytest.raises(SourceError, match="n0144076"):
        ClassSpace("custom:x", ("n01440764", "n0144076"))
    with pytest.raises(SourceError, match="n01440764"):
        ClassSpace("custom:x", ("n01440764", "n01443537", "n01440764"))
    with pytest.raises(SourceError, match="'bogus'"):
        ClassSpace("bogus", ("n01440764",))
    with pytest.raises(SourceError, match="no classes"):
        ClassSpace("custom:x", ())
    space = ClassSpace.custom("pets", ["n02084071", "n02121808"])
    assert space.id == "custom:pets" and space.wnids == ("n02084071", "n02121808")
    assert space.index("n02121808") == 1
    assert space == ClassSpace("custom:pets", ("n02084071", "n02121808")) and hash(space) == hash(
        ClassSpace("custom:pets", ("n02084071", "n02121808")))


def test_load_space_standard_names_are_shared() -> None:
    for name in STANDARD_SPACES:
        assert load_space(name) is standard_space(name)


def test_load_space_from_file(tmp_path: Path) -> None:
    path = tmp_path / "pets.txt"
    path.write_text("# my classes\n\nn02121808  # cat\nn02084071\n   \nn04399382\n", encoding="utf-8")
    space = load_space(str(path))
    assert space.id == "custom:pets"
    assert space.wnids == ("n02121808", "n02084071", "n04399382")
    assert space.index("n04399382") == 2
    assert load_space(path) == space


@pytest.mark.parametrize("content, line, what", [
    ("n02121808\nn0208407\n", 2, "malformed"),
    ("n02121808\n\nN02084071\n", 3, "malformed"),
    ("n02121808\nn02084071 dog\n", 2, "malformed"),
    ("# c\nn02121808\nn02084071\nn02121808\n", 4, "duplicate"),
])
def test_load_space_errors_name_the_line(tmp_path: Path, content: str, line: int, what: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match=rf"bad\.txt:{line}: {what}"):
        load_space(str(path))


def test_load_space_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.txt"):
        load_space(str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no wnids"):
        load_space(empty)


def test_choose_space_examples() -> None:
    assert choose_space(IN1K.wnids) is IN1K  # ILSVRC-2012, teddy bear included
    assert choose_space(IN21K.wnids) is IN21K
    assert choose_space(list(IN21K.wnids) + [TEDDY]) is IN22K
    assert choose_space(["n02084071", "n01440764"]) is IN21K  # dog is fall11, not ILSVRC
    assert choose_space(["n01440764", "n09999999", "n00001740"]) is IN1K  # unknown / non-class wnids ignored
    assert choose_space([]) is IN1K
    assert choose_space(iter(["n04399382"])) is IN1K


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(IN22K.wnids), max_size=20), st.lists(st.sampled_from(IN1K.wnids), max_size=5))
def test_choose_space_is_smallest_holding(picks: list[str], ilsvrc: list[str]) -> None:
    wnids = picks + ilsvrc
    chosen = choose_space(wnids)
    assert all(w in chosen for w in wnids)
    smaller = STANDARD_SPACES[:STANDARD_SPACES.index(chosen.id)]
    assert all(any(w not in standard_space(s) for w in wnids) for s in smaller)


def test_is_known_wnid() -> None:
    assert is_known_wnid("n00001740") and is_known_wnid(TEDDY) and is_known_wnid("n02084071")
    assert not is_known_wnid("n02084442") and not is_known_wnid("dog")
