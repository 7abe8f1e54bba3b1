"""The class orders of pretrained heads as targets: ``ImageNetStream(url, classes="in21k-p")`` yields
targets in the MIIL order, the sharder takes them as ``--classes``, and ``subset_indices`` slices a
1,000-way head to ImageNet-A's 200."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.hierarchy import Hierarchy, standard_space, subset_indices
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import make_jpeg


def test_targets_follow_the_named_space(tmp_path, dsutil) -> None:
    miil = standard_space("in21k-p")
    outside = next(w for w in standard_space("in21k").wnids if w not in miil)
    wnids = (miil.wnids[5], miil.wnids[4000], miil.wnids[11220], outside)
    built = dsutil.build_dataset(str(tmp_path / "ds"), 40, 10, wnids=wnids)
    ds = ImageNetStream(built.url, classes="in21k-p", size=16, batch_size=4, return_keys=True, transform="eval")
    assert ds.classes == list(miil.wnids) and ds.num_classes == 11221
    got = {k: int(t) for _, targets, keys in DataLoader(ds, batch_size=4) for k, t in zip(keys, targets)}
    expected = {k: miil.index(wnids[label]) for k, label in built.labels.items() if wnids[label] != outside}
    assert got == expected and set(got.values()) == {5, 4000, 11220}
    levels = Hierarchy.for_space(ds.classes)  # the semantic-softmax levels of the head's space
    assert levels is Hierarchy.for_space("in21k-p") and len(levels) == 11221


def test_the_sharder_takes_a_named_space(tmp_path) -> None:
    wnid = standard_space("in12k").wnids[7]
    src = tmp_path / "src" / wnid
    src.mkdir(parents=True)
    for i in range(3):
        (src / f"{wnid}_{i}.JPEG").write_bytes(make_jpeg(40, 30, seed=i))
    assert main(["shard", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--classes", "in12k",
                 "--no-progress"]) == 0
    ds = ImageNetStream(str(tmp_path / "out"), transform="eval", size=16)
    assert ds.classes == list(standard_space("in12k").wnids) and {int(t) for _, t in ds} == {7}


def test_in1k_logits_evaluated_on_imagenet_a() -> None:
    head = subset_indices("in1k", "imagenet-a")
    in1k, a = standard_space("in1k"), standard_space("imagenet-a")
    assert len(head) == 200 and [in1k.wnids[i] for i in head] == list(a.wnids)
    logits = torch.randn(8, 1000)
    a_logits = logits[:, torch.from_numpy(head)]
    best = a_logits.argmax(dim=1).numpy()  # an ImageNet-A class index per image
    for i, b in enumerate(best.tolist()):  # the in1k class it stands for has the best logit among the 200
        assert a.wnids[b] == in1k.wnids[head[b]]
        assert float(logits[i, head[b]]) == float(logits[i, torch.from_numpy(head)].max())
    assert np.all(np.diff(head) > 0)  # ImageNet-A keeps in1k's order
