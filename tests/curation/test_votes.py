"""Human-verification votes: the table, the rule (strict yes majority, at least min_votes votes), and
the sharder keeping only voted-in images of a folder source, with the votes in their metadata."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet_stream.curation.votes import TOO_FEW_VOTES, VOTED_OUT, read_votes, verdict
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import SideIndex, decode_meta, iter_samples
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.synthetic import make_jpeg

WNID = "n01440764"


@given(yes=st.integers(0, 20), no=st.integers(0, 20), min_votes=st.integers(0, 10))
def test_the_rule_is_a_strict_yes_majority_of_enough_votes(yes, no, min_votes) -> None:
    reason = verdict(yes, no, min_votes)
    assert (reason is None) == (yes > no and yes + no >= min_votes)
    if reason is not None:
        assert reason == (TOO_FEW_VOTES if yes + no < min_votes else VOTED_OUT)


def test_counts_and_per_annotator_files_give_the_same_table(tmp_path) -> None:
    counts = tmp_path / "votes.csv"
    counts.write_text("key,yes,no\na,3,0\nb,1,2\nc,2,1\n")
    rows = tmp_path / "votes.tsv"
    rows.write_text("key\tannotator\tanswer\n" + "".join(
        f"{k}\t{w}\t{ans}\n" for k, votes in {"a": "yyy", "b": "ynn", "c": "yyn"}.items()
        for w, ans in zip("uvw", votes)) + "a\tu\tno\n")  # a repeated answer of u counts once (its first)
    jsonl = tmp_path / "votes.jsonl"
    jsonl.write_text("\n".join(json.dumps({"key": k, "yes": y, "no": n}) for k, y, n in
                               [("a", 3, 0), ("b", 1, 2), ("c", 2, 1)]))
    tables = [read_votes(str(p)) for p in (counts, rows, jsonl)]
    for table in tables:
        assert table.lookup(["a", "b", "c", "missing"]) == ((3, 0), (1, 2), (2, 1), (0, 0))
    assert len({t.digest() for t in tables}) == 1


@pytest.mark.parametrize("text, match", [
    ("key,yes\na,1\n", "header"),
    ("key,yes,no\na,x,1\n", "yes must be a count"),
    ("key,annotator,answer\na,u,maybe\n", "not yes/no"),
    ("key,yes,no\n,1,1\n", "missing key"),
])
def test_bad_vote_files_name_the_line(tmp_path, text, match) -> None:
    path = tmp_path / "v.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_votes(str(path))


def test_sharding_a_folder_keeps_only_voted_in_images_with_their_votes(tmp_path) -> None:
    src = tmp_path / "src" / WNID
    src.mkdir(parents=True)
    keys = [f"{WNID}_{i}" for i in range(8)]
    for i, key in enumerate(keys):
        (src / f"{key}.JPEG").write_bytes(make_jpeg(64, 48, seed=i))
    votes = {keys[0]: (3, 0), keys[1]: (2, 1), keys[2]: (1, 1), keys[3]: (1, 2), keys[4]: (2, 0),
             keys[5]: (5, 4)}  # keys[6], keys[7]: no votes
    path = tmp_path / "votes.csv"
    path.write_text("key,yes,no\n" + "".join(f"{k},{y},{n}\n" for k, (y, n) in votes.items()))
    out = tmp_path / "out"
    result = shard([str(tmp_path / "src")], ShardOptions(out=str(out), classes="in1k", votes=read_votes(str(path))))
    kept = {keys[0], keys[1], keys[5]}
    assert result.report["rejected"][VOTED_OUT]["count"] == 1  # 1-2
    assert result.report["rejected"][TOO_FEW_VOTES]["count"] == 4  # 1-1, 2-0 and the two without votes
    assert result.report["votes"] == {"min_votes": 3, "kept": 3, TOO_FEW_VOTES: 4, VOTED_OUT: 1, "source": "votes.csv"}
    assert result.report["rejected"][VOTED_OUT]["examples"][0]["detail"] == "1 yes / 2 no votes"
    found = {}
    for name in sorted(p.name for p in out.glob("train-*.tar")):
        for key, members in iter_samples((out / name).read_bytes()):
            found[key] = decode_meta(members["msgpack"])["votes"]
        assert SideIndex.from_bytes((out / name.replace(".tar", ".idx")).read_bytes()).num_samples >= 0
    assert found == {k: list(votes[k]) for k in kept}

    lenient = shard([str(tmp_path / "src")], ShardOptions(out=str(tmp_path / "out2"), classes="in1k",
                                                          votes=read_votes(str(path)), min_votes=2))
    assert lenient.manifest.num_samples == 4  # 2-0 passes with --min-votes 2
    assert np.sum(lenient.manifest.class_counts) == 4


def test_the_shard_command_takes_votes_and_prints_the_filter(tmp_path, capsys) -> None:
    from imagenet_stream.cli import main

    src = tmp_path / "src" / WNID
    src.mkdir(parents=True)
    for i in range(4):
        (src / f"{WNID}_{i}.JPEG").write_bytes(make_jpeg(64, 48, seed=i))
    votes = tmp_path / "votes.tsv"
    votes.write_text("key\tannotator\tanswer\n" + "".join(f"{WNID}_{i}\t{a}\t{'yes' if i < 2 else 'no'}\n"
                                                          for i in range(4) for a in "abc"))
    assert main(["shard", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--classes", "in1k",
                 "--votes", str(votes), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "votes       kept 2 with a yes majority of >= 3 votes; 0 with too few votes, 2 voted out" in printed
    assert main(["shard", str(tmp_path / "src"), "--out", str(tmp_path / "o2"), "--votes", str(tmp_path / "none.csv"),
                 "--no-progress"]) == 2
    assert "cannot read the votes file" in capsys.readouterr().err
