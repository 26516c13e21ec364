"""Batches by token budget: short texts travel in larger batches, long ones in ``per_device_train_batch_size``.

A step's cost on a CPU is a fixed overhead (the optimizer update of every weight, Python and
kernel launches) plus work that grows with the padded tokens in the batch. Thirty-two SST-2
sentences of 13 tokens leave the overhead dominant. This sampler sorts the examples by length and
cuts the sorted list into batches, each holding as many examples as fit in the tokens of a full batch
of ``max_seq_length`` texts, capped at ``growth`` times the configured batch size. A batch's texts
then have nearly the same length, so almost nothing is padding (SST-2 train: 0.4% of the tokens, against
20% with buckets of 8 tokens); memory never exceeds that of a full batch of the longest texts, and
batches of the longest texts are exactly ``per_device_train_batch_size``.

The cut points depend only on the sorted lengths, so every epoch has the same number of batches
(Trainer plans its schedule and resumes from ``len()``). Each epoch reshuffles the examples of equal
length and the order of all batches, seeded, so runs are reproducible. Under DDP every process draws
the same batches and keeps every ``world_size``-th one (the list is first padded with its own head to
a multiple of ``world_size``, as ``DistributedSampler`` does), so all processes take the same number of steps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


def batch_size_for(length: int, batch_size: int, max_seq_length: int, growth: int) -> int:
    """Examples in a batch whose longest text has ``length`` tokens: the token budget, within [batch_size, growth x batch_size]."""
    longest = min(max(int(length), 1), max_seq_length)
    return max(batch_size, min(batch_size * growth, batch_size * max_seq_length // longest))


class TokenBudgetBatchSampler:
    """A ``batch_sampler`` for ``torch.utils.data.DataLoader``: index lists of length-sorted, token-budgeted batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, max_seq_length: int, growth: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        # No fixed batch size: accelerate's shard wrapper keeps only batches of exactly ``batch_size`` when it has one.
        self.batch_size = None
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, max(world_size, 1)
        self.lengths = [min(max(int(n), 1), max_seq_length) for n in lengths]
        self._sizes = {n: batch_size_for(n, batch_size, max_seq_length, growth) for n in set(self.lengths)}
        self._total = len(self._cut(sorted(range(len(self.lengths)), key=self.lengths.__getitem__)))
        self._len = -(-self._total // self.world_size)

    def _cut(self, order: list[int]) -> list[list[int]]:
        """Cut indices sorted by length into batches: each grows until the next text would break its budget."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and len(current) >= self._sizes[self.lengths[i]]:  # i would be the batch's longest text
                batches.append(current)
                current = []
            current.append(i)
        return batches + [current] if current else batches

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (Trainer calls it before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        keys = [rng.random() for _ in self.lengths]  # equal lengths in a new order each epoch
        batches = self._cut(sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], keys[i])))
        rng.shuffle(batches)
        batches += batches[: self._len * self.world_size - len(batches)]
        yield from batches[self.rank::self.world_size]

    def mean_batch_size(self) -> float:
        """Examples per batch on average over an epoch."""
        return len(self.lengths) / max(self._total, 1)
