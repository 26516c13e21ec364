"""Batches by token budget: short texts travel in larger batches, long ones in ``per_device_train_batch_size``.

A step's cost on a CPU is a fixed overhead (the optimizer update of every weight, Python and
kernel launches) plus work that grows with the padded tokens in the batch. Thirty-two SST-2
sentences of 13 tokens leave the overhead dominant. This sampler buckets examples by length
(multiples of 8 tokens) and gives each bucket its own batch size: as many examples as fit in the
tokens of a full batch of ``max_seq_length`` texts, capped at ``growth`` times the configured batch
size. Memory never exceeds that of a full batch of longest texts, and batches of the longest texts
are exactly ``per_device_train_batch_size``.

Buckets keep the number of batches per epoch fixed (Trainer plans its schedule and resumes from
``len()``), and each epoch reshuffles the examples inside every bucket and the order of all batches,
seeded, so runs are reproducible. Under DDP every process draws the same batches and keeps every
``world_size``-th one (the list is first padded with its own head to a multiple of ``world_size``,
as ``DistributedSampler`` does), so all processes take the same number of steps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

BUCKET_TOKENS = 8


def _bucket(n: int, max_seq_length: int) -> int:
    """The length bucket of a text of ``n`` tokens: its length rounded up to a multiple of 8, at most ``max_seq_length``."""
    return min(max_seq_length, -(-max(int(n), 1) // BUCKET_TOKENS) * BUCKET_TOKENS)


def bucket_batch_sizes(lengths: Sequence[int], batch_size: int, max_seq_length: int, growth: int) -> dict[int, int]:
    """Examples per batch for each length bucket (keyed by the bucket's upper bound in tokens)."""
    budget = batch_size * max_seq_length
    out = {}
    for n in lengths:
        upper = _bucket(n, max_seq_length)
        if upper not in out:
            out[upper] = max(batch_size, min(batch_size * growth, budget // upper))
    return out


class TokenBudgetBatchSampler:
    """A ``batch_sampler`` for ``torch.utils.data.DataLoader``: index lists of length-bucketed, token-budgeted batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, max_seq_length: int, growth: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        # No fixed batch size: accelerate's shard wrapper keeps only batches of exactly ``batch_size`` when it has one.
        self.batch_size = None
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, max(world_size, 1)
        sizes = bucket_batch_sizes(lengths, batch_size, max_seq_length, growth)
        self.buckets: dict[int, list[int]] = {u: [] for u in sizes}
        for i, n in enumerate(lengths):
            self.buckets[_bucket(n, max_seq_length)].append(i)
        self.sizes = sizes
        self._total = sum(-(-len(ix) // sizes[u]) for u, ix in self.buckets.items())
        self._len = -(-self._total // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (Trainer calls it before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches = []
        for upper in sorted(self.buckets):
            ix = self.buckets[upper][:]
            rng.shuffle(ix)
            size = self.sizes[upper]
            batches += [ix[k:k + size] for k in range(0, len(ix), size)]
        rng.shuffle(batches)
        batches += batches[: self._len * self.world_size - len(batches)]
        yield from batches[self.rank::self.world_size]

    def mean_batch_size(self) -> float:
        """Examples per batch on average over an epoch."""
        return sum(len(ix) for ix in self.buckets.values()) / max(self._total, 1)
