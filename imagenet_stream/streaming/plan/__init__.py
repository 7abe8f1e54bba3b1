"""Pure epoch planning: exactly which samples each (rank, DataLoader worker) yields each epoch.

No I/O, no torch: integers in, numpy arrays out. The result depends only on
``(sample_counts, world, seed, epoch, batch_size, shuffle, shuffle_window, partial)``.

The algorithm (this is the contract; ``N = sum(sample_counts)``, ``R = world_size``,
``W = num_workers``, ``B = batch_size``):

1. **Shard order.** With ``shuffle``, shards are permuted by
   ``default_rng([seed, epoch, 0]).permutation(num_shards)`` (the same on every rank);
   otherwise manifest order. The *sequence* is the shards' samples concatenated in that order.
   A sample keeps its *global id*: its position in the manifest-order concatenation.
2. **Equal share per rank.** ``partial="drop"``: ``m = N // R`` and the last ``N % R``
   samples of the sequence are dropped. ``partial="pad"``: ``m = ceil(N / R)`` and the
   sequence is extended cyclically (position ``p`` -> ``p mod N``), i.e. by repeating its first
   ``m*R - N`` samples; nothing is dropped. Other values raise :class:`PlanError`.
3. **Rank block.** Rank ``r`` takes sequence positions ``[r*m, (r+1)*m)``: contiguous, so a
   rank reads few shards; shards are split by sample ranges, so any shard count works.
4. **Worker pieces.** The block forms ``nb = ceil(m / B)`` rank batches (only the last may be
   short). Rank batch ``j`` is worker ``j % W``'s ``(j // W)``-th batch — the order in which
   torch's DataLoader pulls batches from its workers (round-robin, worker 0 first). Worker
   ``w`` takes one contiguous piece of the block whose size is the total size of its batches;
   pieces are laid out in worker order.
5. **Window shuffle.** A *run* is a maximal stretch of a piece inside one shard at consecutive
   sequence positions (a pad wrap-around starts a new run). Window ``k`` of a piece is its runs
   ``[k*shuffle_window, (k+1)*shuffle_window)``; with ``shuffle`` its samples are permuted by
   ``default_rng([seed, epoch, 1, rank, worker, k])``. Guarantee: every window holds samples of
   at most ``shuffle_window`` runs, hence at most ``shuffle_window`` distinct shards, each one
   contiguous in-shard range. Without ``shuffle`` nothing is permuted: each worker yields its
   piece in sequence (= manifest) order.
6. **Resumption.** After the rank consumed ``n = k*B`` samples (``k`` whole batches) or
   ``n = m``, ``samples[resume_offset(n):]`` on each worker (``resume_offset(n) =
   B * batches_before(k)``) yields exactly the batches an uninterrupted run yields next.
   The next batch is worker ``k % W``'s: a DataLoader that restores its worker cycle
   (torchdata ``StatefulDataLoader``) continues exactly; a fresh DataLoader starts at worker 0,
   so its worker ``w`` must plan as worker ``(w + k) % W`` (:func:`resume_world`).
   Resuming requires the same world shape, batch size and arguments; checking that is the
   caller's job.

A worker's batches are consecutive ``B``-slices of its ``samples``; only the worker owning rank
batch ``nb - 1`` has a short last batch.
"""
from imagenet_stream.streaming.plan.epoch import EpochPlan, plan_epoch, resume_world
from imagenet_stream.streaming.plan.locate import locate, shard_runs
from imagenet_stream.streaming.plan.world import World

__all__ = ["EpochPlan", "World", "locate", "plan_epoch", "resume_world", "shard_runs"]
