"""The epoch's sample multiset through real datasets: mixtures of datasets with different class spaces,
class-balanced sampling on a long tail, and both under several ranks and a resume."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy.spaces import standard_space
from imagenet_stream.streaming import ClassSampling, ImageNetStream, Stream

#: Dataset B's classes: ILSVRC dogs that dataset A (dsutil.WNIDS) does not have.
B_WNIDS = ("n02087046", "n02088094", "n02088238")


def stream(url=None, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 16, "batch_size": 10, "return_keys": True, "transform": "eval", **kw})


def samples(ds: ImageNetStream, num_workers: int = 0) -> list[tuple[str, int]]:
    dl = DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers)
    return [(k, t) for _, targets, keys in dl for k, t in zip(keys, targets.tolist())]


@pytest.fixture(scope="module")
def two_spaces(tmp_path_factory, dsutil):
    root = tmp_path_factory.mktemp("mix")
    a = dsutil.build_dataset(str(root / "a"), 600, 50)
    b = dsutil.build_dataset(str(root / "b"), 400, 40, wnids=B_WNIDS)
    return a, b


@pytest.mark.parametrize("seed", [0, 3])
def test_a_70_30_mixture_of_two_class_spaces_holds_its_proportions(two_spaces, seed: int) -> None:
    a, b = two_spaces
    union = sorted(a.manifest.classes.wnids + B_WNIDS)
    ds = stream([a.url, b.url], weights=[0.7, 0.3], classes=union, seed=seed)
    got = samples(ds, num_workers=2)
    assert len(got) == len(ds) == 1000  # every eligible sample's worth: A is drawn with replacement
    from_b = [(k, t) for k, t in got if union[t] in B_WNIDS]
    assert abs(len(from_b) / len(got) - 0.3) <= 0.02
    for key, target in got:  # each source's classes are mapped into the target space by wnid
        built = b if union[target] in B_WNIDS else a
        assert built.wnid(key) == union[target]
    assert Counter(k for k, t in got if union[t] not in B_WNIDS).most_common(1)[0][1] > 1  # 700 of 600
    assert len({k for k, _ in from_b}) == len(from_b)  # 300 of 400: replacement only where needed
    assert samples(stream([a.url, b.url], weights=[0.7, 0.3], classes=union, seed=seed)) == got  # deterministic


def test_streams_with_a_standard_target_space_and_their_own_weights(two_spaces) -> None:
    a, b = two_spaces
    ds = stream(streams=[Stream(a.url, weight=1.0), Stream(b.url, weight=1.0)], classes="in1k", epoch_size=500)
    in1k = standard_space("in1k").wnids
    got = samples(ds)
    assert len(got) == 500 and ds.num_classes == 1000
    share_b = sum(in1k[t] in B_WNIDS for _, t in got) / len(got)
    assert abs(share_b - 0.5) <= 0.02
    assert all((b if in1k[t] in B_WNIDS else a).wnid(k) == in1k[t] for k, t in got)


def test_mixing_different_class_spaces_needs_a_target_space(two_spaces) -> None:
    a, b = two_spaces
    with pytest.raises(ConfigError, match="classes="):
        stream([a.url, b.url], weights=[0.5, 0.5])


def test_a_mixture_keeps_equal_counts_per_rank_and_tiles_the_epoch(two_spaces, monkeypatch) -> None:
    a, b = two_spaces
    union = sorted(a.manifest.classes.wnids + B_WNIDS)
    whole = sorted(samples(stream([a.url, b.url], weights=[0.7, 0.3], classes=union, seed=1)))
    per_rank = []
    monkeypatch.setenv("WORLD_SIZE", "3")
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        ds = stream([a.url, b.url], weights=[0.7, 0.3], classes=union, seed=1)
        per_rank.append(samples(ds, num_workers=2 if rank == 1 else 0))
        assert len(per_rank[-1]) == len(ds)
    assert len({len(r) for r in per_rank}) == 1 and len(per_rank[0]) == 1000 // 3  # drop: one position left out
    seen = Counter(s for r in per_rank for s in r)
    assert all(seen[s] <= whole.count(s) for s in seen)  # a sub-multiset of the one-rank epoch


@pytest.fixture(scope="module")
def long_tail(tmp_path_factory, dsutil):
    """700 samples of 7 classes with sizes 320, 160, 90, 60, 35, 20, 15, spread over 14 shards."""
    sizes = [320, 160, 90, 60, 35, 20, 15]
    labels = np.repeat(np.arange(7), sizes)
    np.random.default_rng(0).shuffle(labels)
    built = dsutil.build_dataset(str(tmp_path_factory.mktemp("tail") / "ds"), 700, 50,
                                 label_of=lambda i: int(labels[i]))
    return built, sizes


#: Documented tolerance of class-balanced counts: the per-shard rounding and the draw add about
#: sqrt(expected) of noise; 4 of those bound every class here.
def within_tolerance(count: int, expected: float) -> bool:
    return abs(count - expected) <= 4 * np.sqrt(expected)


@pytest.mark.parametrize("seed", range(4))
def test_balanced_sampling_evens_out_a_long_tail(long_tail, seed: int) -> None:
    built, sizes = long_tail
    ds = stream(built.url, sampling="balanced", seed=seed)
    got = samples(ds)
    assert len(got) == len(ds) == 700
    counts = np.bincount([t for _, t in got], minlength=7)
    assert all(within_tolerance(int(c), 100) for c in counts), counts
    assert all(built.labels[k] == t for k, t in got)
    # duplicates come from the tail; the head is subsampled
    per_key = Counter(k for k, _ in got)
    tail_class = int(np.argmin(sizes))
    assert max(n for k, n in per_key.items() if built.labels[k] == tail_class) > 1


def test_a_cap_and_a_floor_per_class(long_tail) -> None:
    built, sizes = long_tail
    capped = samples(stream(built.url, sampling=ClassSampling(cap=50)))
    wanted = np.minimum(sizes, 50)
    assert len(capped) == wanted.sum()
    counts = np.bincount([t for _, t in capped], minlength=7)
    assert all(within_tolerance(int(c), float(w)) for c, w in zip(counts, wanted)), counts
    floored = samples(stream(built.url, sampling={"floor": 40}))
    wanted = np.maximum(sizes, 40)
    assert len(floored) == wanted.sum()
    counts = np.bincount([t for _, t in floored], minlength=7)
    assert all(within_tolerance(int(c), float(w)) for c, w in zip(counts, wanted)), counts


def test_balanced_sampling_resumes_exactly_in_another_world(long_tail, monkeypatch) -> None:
    built, _ = long_tail
    full = samples(stream(built.url, sampling="balanced", seed=2))
    ds = stream(built.url, sampling="balanced", seed=2)
    it = iter(DataLoader(ds, batch_size=10, num_workers=2))
    head = [k for _ in range(7) for k in next(it)[2]]
    state = ds.state_dict(samples_seen=70)
    del it
    assert head == [k for k, _ in full[:70]]
    monkeypatch.setenv("WORLD_SIZE", "2")
    rest = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        fresh = stream(built.url, sampling="balanced", seed=2, batch_size=5)
        fresh.load_state_dict(state)
        rest.append(samples(fresh))
        assert len(rest[-1]) == len(fresh) == 315
    assert sorted(rest[0] + rest[1]) == sorted(full[70:])  # 630 = 2 ranks x 63 batches of 5


def test_sampling_arguments_are_checked(long_tail) -> None:
    built, _ = long_tail
    with pytest.raises(ConfigError, match="exactly one"):
        ClassSampling(balanced=True, cap=3)
    with pytest.raises(ConfigError, match="floor"):
        ClassSampling(cap=3, floor=5)
    with pytest.raises(ConfigError, match="weights"):
        stream(built.url, sampling=ClassSampling(weights=[1.0, 2.0]))
    with pytest.raises(ConfigError, match="sampling"):
        stream(built.url, sampling="uniform")
