"""How long a fine-tune trains: its epochs, batches and optimiser steps, resolved for the size of its data.

The defaults (3 epochs, short texts in batches up to ``batch_growth`` 4 times larger) were tuned on large sets, where
they make thousands of steps. On a few hundred rows they make a dozen (480 rows: 12 steps), and the model barely moves
from its initialisation. So when the user set neither ``num_train_epochs`` nor ``max_steps`` and the defaults could
make fewer than the task's ``min_train_steps``, the small-data rule applies: batches stay at
``per_device_train_batch_size`` (``batch_growth`` 1: the same examples, up to 4 times the steps), and the epochs rise
until the run makes that many steps, at most :data:`MAX_AUTO_EPOCHS` (and a deployment's cap). The best checkpoint is
still the best epoch on the validation split. Images follow the same rule with their own minimum and batches that never
grow. Measured on cuts of the shared sets and of Fashion-MNIST (README, "Small data, text" and "Small data, images").

The rule reads only the number of training rows, so the Train page, the CLI, the estimate and the job agree on the
step count without tokenising anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .batching import TokenBudgetBatchSampler
from .config import DEFAULT_EPOCHS, TrainConfig
from .limits import current

MAX_AUTO_EPOCHS = 30  # 100 rows, batches of 32: 30 epochs make 120 steps; more would mostly memorise


def steps_per_epoch(config: TrainConfig, n_train: int, world_size: int = 1, lengths: Sequence[int] | None = None) -> int:
    """Optimizer steps in one pass over ``n_train`` examples (at least 1).

    With the training texts' token ``lengths``, short texts are counted in the larger batches
    that ``batch_growth`` gives them (:mod:`bmcore.batching`); without, every batch holds
    ``per_device_train_batch_size`` examples.
    """
    if lengths is not None and config.batch_growth > 1:
        sampler = TokenBudgetBatchSampler(lengths, config.per_device_train_batch_size, config.max_seq_length, config.batch_growth)
        batches = math.ceil(len(sampler) / max(world_size, 1))
    else:
        batches = math.ceil(n_train / (config.per_device_train_batch_size * max(world_size, 1)))
    return max(1, math.ceil(batches / config.gradient_accumulation_steps))


@dataclass(frozen=True)
class Schedule:
    """What a run trains for once its data size is known. ``reason`` says why, when the small-data rule changed it."""

    n_train: int
    epochs: float | None  # None: the run trains for max_steps
    batch_growth: int
    steps_per_epoch: int  # counted without growth: the rule's batches, or the most a grown epoch can take
    min_steps: int  # the task's minimum for a run on its defaults (0: no rule)
    reason: str | None = None  # set when the small-data rule applied

    @property
    def small_data(self) -> bool:
        """True when the small-data rule changed the run's epochs or batches."""
        return self.reason is not None

    def apply(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the resolved epochs and batch growth (unchanged when the rule did not apply)."""
        if not self.small_data:
            return config
        return dataclasses.replace(config, num_train_epochs=self.epochs, batch_growth=self.batch_growth)


def resolve_schedule(config: TrainConfig, n_train: int, min_steps: int, world_size: int = 1, *, grows: bool = True,
                     noun: str = "rows") -> Schedule:
    """The run's epochs and batch growth for ``n_train`` training rows: the small-data rule (see the module) when the
    config leaves both ``num_train_epochs`` and ``max_steps`` unset and the defaults could make fewer than
    ``min_steps`` optimiser steps (the task's :attr:`~bmcore.tasks.base.Task.min_train_steps`); else the config's own.
    ``grows``: whether the task's batches grow with ``batch_growth`` (text; images: no); ``noun`` names its examples."""
    per_epoch = steps_per_epoch(config, n_train, world_size)
    base = Schedule(n_train, config.epochs if config.max_steps is None else None, config.batch_growth, per_epoch, min_steps)
    growth = max(config.batch_growth, 1) if grows else 1
    fewest = DEFAULT_EPOCHS * per_epoch / growth  # every batch grown to its largest
    if config.num_train_epochs is not None or config.max_steps is not None or not min_steps or fewest >= min_steps:
        return base
    epochs = float(min(MAX_AUTO_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(min_steps / per_epoch))))
    if current().max_epochs:
        epochs = min(epochs, float(current().max_epochs))
    more = f"{epochs:g} epochs" if epochs > DEFAULT_EPOCHS else f"the default {epochs:g} epochs"
    steps = math.ceil(epochs * per_epoch)
    if grows:
        reason = (f"small dataset: {n_train:,} training {noun}, so {more} in batches of {config.per_device_train_batch_size} "
                  f"(batch_growth 1) make {steps:,} optimiser steps (short texts in grown batches could make as few as "
                  f"{math.ceil(fewest):,}; the aim is at least {min_steps})")
    else:
        reason = (f"small dataset: {n_train:,} training {noun}, so {more} in batches of {config.per_device_train_batch_size} "
                  f"make {steps:,} optimiser steps (the default {DEFAULT_EPOCHS:g} epochs would make {math.ceil(fewest):,}; "
                  f"the aim is at least {min_steps})")
    return Schedule(n_train, epochs, 1, per_epoch, min_steps, reason)


def planned_steps(schedule: Schedule, config: TrainConfig) -> int:
    """Optimiser steps of a run on this schedule, counted without growth (``max_steps`` when set)."""
    if config.max_steps is not None:
        return int(config.max_steps)
    return max(1, math.ceil((schedule.epochs or DEFAULT_EPOCHS) * schedule.steps_per_epoch))
