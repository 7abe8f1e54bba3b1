"""Pure epoch planning: exactly which samples each (rank, DataLoader worker) yields, in what order.

No I/O, no torch: integers in, numpy arrays out. Three steps, each its own module:

1. :mod:`.sampleset`: the epoch's *multiset*: per shard how many samples it contributes and
   (lazily) which. Class subsets and the exclusion overlay choose the eligible samples; mixtures and
   class balance draw from them per epoch. Every feature goes through this one step.
2. :mod:`.order`: one *global order* of that multiset per ``(seed, epoch)``, the same on every
   rank: shards shuffled, samples read in chunks of consecutive samples, chunks shuffled within
   windows of shards.
3. :mod:`.batches`: ranks take interleaved batches of the global order, so after ``k`` global
   batch steps the world has consumed exactly its first ``P + k*R*B`` positions. That one number is
   the whole resume state: it resumes in any world ``(R', W', B')``, exactly once, equal counts.

:mod:`.world` holds the :class:`World` a worker plans for.
"""
from imagenet_stream.streaming.plan.batches import PARTIAL_MODES, RankPlan, rank_share, worker_batches
from imagenet_stream.streaming.plan.order import EpochOrder, OrderSpec
from imagenet_stream.streaming.plan.sampleset import SampleSet, Selection, apportion, drawn, eligible
from imagenet_stream.streaming.plan.world import World, check_int

__all__ = ["EpochOrder", "OrderSpec", "PARTIAL_MODES", "RankPlan", "SampleSet", "Selection", "World", "apportion",
           "check_int", "drawn", "eligible", "rank_share", "worker_batches"]
