"""Read a few samples' image bytes from a dataset by global sample id (for thumbnails): one ranged
read of the image member each, the shard's side index fetched once (a small LRU)."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from imagenet_stream.format import Manifest
from imagenet_stream.format.overlay import load_exclusions
from imagenet_stream.format.side_index import SideIndex
from imagenet_stream.storage import Store

_INDEXES_KEPT = 32


@dataclass(frozen=True)
class SampleImage:
    sample: int        # global sample id
    key: str
    label: int         # class index in the manifest's class space
    data: bytes        # the stored image bytes


class SampleImages:
    """Samples of the dataset at ``store`` (its ``index.json`` already loaded as ``manifest``)."""

    def __init__(self, store: Store, manifest: Manifest) -> None:
        self.manifest = manifest
        self.data_store = store.elsewhere(manifest.shards_at)
        self.index_store = store.elsewhere(manifest.indexes_at)
        self.starts = np.concatenate([[0], np.cumsum([s.num_samples for s in manifest.shards])]).astype(np.int64)
        self.excluded = load_exclusions(store, manifest)
        self._indexes: OrderedDict[int, SideIndex] = OrderedDict()

    def _index(self, shard: int) -> SideIndex:
        found = self._indexes.get(shard)
        if found is None:
            entry = self.manifest.shards[shard]
            found = SideIndex.from_bytes(self.index_store.read(entry.index), entry.index)
            self._indexes[shard] = found
            while len(self._indexes) > _INDEXES_KEPT:
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(shard)
        return found

    def read(self, sample: int) -> SampleImage:
        shard = int(np.searchsorted(self.starts, sample, side="right")) - 1
        if not 0 <= shard < len(self.manifest.shards) or sample >= self.starts[-1]:
            raise IndexError(f"sample {sample} is not in this dataset of {int(self.starts[-1])} samples")
        index, j = self._index(shard), int(sample - self.starts[shard])
        begin = int(index.image_offsets[j])
        data = self.data_store.read(self.manifest.shards[shard].name, begin, begin + int(index.image_sizes[j]))
        return SampleImage(sample, index.keys[j], int(index.labels[j]), data)

    def random_ids(self, count: int, seed: int) -> list[int]:
        """``count`` distinct kept samples drawn reproducibly from ``seed`` (sorted by shard, so the
        reads go shard by shard)."""
        total = int(self.starts[-1])
        rng = np.random.default_rng([seed, 17])
        picked: set[int] = set()
        for _ in range(100):
            need = min(count - len(picked), total - len(self.excluded) - len(picked))
            if need <= 0:
                break
            draw = rng.integers(0, total, size=need * 2)
            keep = draw[~np.isin(draw, self.excluded)]
            for x in keep.tolist():
                if len(picked) < count:
                    picked.add(int(x))
        return sorted(picked)


__all__ = ["SampleImage", "SampleImages"]
