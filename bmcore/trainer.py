"""The Trainer plumbing every training job shares, whatever its task.

``transformers.Trainer`` provides precision, checkpoints, resume, early stopping, gradient accumulation and DDP
(under ``torchrun`` or ``accelerate launch``). This module adds what a dashboard needs: token-budget batches, a
callback that writes progress lines to ``metrics.jsonl`` and honours stop requests, ``TrainingArguments`` from a
config, the device plan, and an atomic save of ``model/``. It knows no task: :mod:`bmcore.tasks` says what the
model learns, :mod:`bmcore.train` runs the job.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import runs
from .batching import TokenBudgetBatchSampler
from .config import TrainConfig
from .device import DeviceInfo, detect_device, select_precision
from .errors import BmcoreError
from .files import atomic_folder
from .model_meta import write_model_meta
from .models import DEFAULT_MAX_SEQ_LENGTH, ModelRef, check_max_seq_length, resolve_model
from .tracking import trainer_report_to
from .vision import is_convolutional

log = logging.getLogger("bmcore.train")

PROGRESS_EVERY_S = 5  # a progress line at least this often (seconds), whatever logging_steps says
EVAL_COST = 1 / 3  # forward only: roughly a third of forward + backward + optimizer per example


def time_left(steps_left: int, seconds_per_step: float, evaluations_left: int, seconds_per_evaluation: float,
              passes_after: float = 0.0) -> float:
    """Seconds until a run ends: its optimizer steps still to take, its evaluations still to come (each with its
    checkpoint save), and the work after training, ``passes_after`` validation-sized passes (the job scores
    validation and test, then evaluates the test split in full)."""
    return max(0, steps_left) * seconds_per_step + (max(0, evaluations_left) + passes_after) * seconds_per_evaluation


def passes_after_training(n_val: int, n_test: int) -> float:
    """The scoring after training in validation-sized passes: validation and test once each to tune and score, then
    the test split again in the full evaluation (with calibration and the baseline)."""
    return (n_val + 2 * n_test) / max(n_val, 1)


def rank() -> int:
    """This process's global rank under torchrun/accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes under torchrun/accelerate (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_logging(run_dir: Path) -> None:
    """Log to ``train.log``; also to stderr unless stderr already is ``train.log`` (a UI-launched job)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in [h for h in root.handlers if getattr(h, "_bmcore", False)]:  # a second job in one process (bench, tests)
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    log_path = run_dir / runs.LOG_FILE
    same = False
    try:
        same = os.path.samefile(f"/proc/self/fd/{sys.stderr.fileno()}", log_path)
    except (OSError, ValueError, AttributeError):
        pass
    if not same:
        fh = logging.FileHandler(log_path, encoding="utf-8")
        fh.setFormatter(fmt)
        fh._bmcore = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    sh._bmcore = True  # type: ignore[attr-defined]
    root.addHandler(sh)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()



def is_head_parameter(model: Any, name: str) -> bool:
    """True for a parameter the pretrained checkpoint did not train for the task: outside the base model (the
    classification head) or in its pooler."""
    prefix = getattr(model, "base_model_prefix", "")
    return not (prefix and name.startswith(prefix + ".")) or ".pooler." in name


def load_checkpoint_weights(model: Any, checkpoint: str | Path | None) -> bool:
    """Copy a ``save_pretrained`` checkpoint's weights into ``model`` through ``from_pretrained`` (which maps renamed
    keys); False when the checkpoint is not such a folder (Trainer's own loading then applies)."""
    if not checkpoint or not hasattr(model, "config") or not (Path(checkpoint) / "model.safetensors").is_file():
        return False
    import torch

    loaded = type(model).from_pretrained(str(checkpoint), config=model.config, use_safetensors=True)
    with torch.no_grad():
        result = model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    return not (result.missing_keys or result.unexpected_keys)


def trainer_class() -> Any:
    """``transformers.Trainer`` plus token-budget batches (:mod:`bmcore.batching`) and a count of examples trained on."""
    from torch.utils.data import DataLoader
    from transformers import Trainer

    class BmcoreTrainer(Trainer):
        def __init__(self, *args: Any, batch_growth: int = 1, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                     head_learning_rate: float | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.batch_growth, self.max_seq_length = batch_growth, max_seq_length
            self.head_learning_rate = head_learning_rate
            self.examples_seen = 0  # on this process; examples per step vary with token-budget batches

        def get_train_dataloader(self) -> Any:
            if self.batch_growth <= 1:
                return super().get_train_dataloader()
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            sampler = TokenBudgetBatchSampler(self.train_dataset["length"], self.args.per_device_train_batch_size,
                                              self.max_seq_length, self.batch_growth, seed=seed,
                                              rank=self.args.process_index, world_size=self.args.world_size)
            data = self._remove_unused_columns(self.train_dataset, description="training")
            loader = DataLoader(data, batch_sampler=sampler, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
            loader = self.accelerator.prepare(loader)
            # The sampler already gives each process its share; accelerate's wrapper would split it again
            # (and pads uneven batches wrongly), so make it a passthrough, as Trainer does for its own
            # rank-aware BatchRebalanceSampler. Trainer calls set_epoch on the sampler each epoch.
            shard = getattr(loader, "batch_sampler", None)
            if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
                shard.num_processes, shard.process_index = 1, 0
            return loader

        def create_optimizer(self, model: Any = None) -> Any:
            # Trainer's optimizer, with the head's parameters in groups of their own at head_learning_rate.
            optimizer = super().create_optimizer(model)
            if self.head_learning_rate is None:
                return optimizer
            model = self.model if model is None else model
            heads = {id(p) for name, p in model.named_parameters() if is_head_parameter(model, name)}
            groups = []
            for group in optimizer.param_groups:
                for head in (False, True):
                    params = [p for p in group["params"] if (id(p) in heads) == head]
                    if params:
                        groups.append({**group, "params": params,
                                       "lr": self.head_learning_rate if head else group["lr"]})
            optimizer.param_groups = []
            for group in groups:
                optimizer.add_param_group(group)
            return optimizer

        # Trainer loads a checkpoint's weights with a plain load_state_dict, but save_pretrained writes the
        # checkpoint names of architectures transformers 5 renamed (ViT: vit.encoder.layer.N -> vit.layers.N), so
        # resume and the best model would silently keep the wrong weights. from_pretrained maps the names back.
        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            if not load_checkpoint_weights(self.model if model is None else model, resume_from_checkpoint):
                super()._load_from_checkpoint(resume_from_checkpoint, model)

        def _load_best_model(self) -> None:
            if not load_checkpoint_weights(self.model, self.state.best_model_checkpoint):
                super()._load_best_model()

        def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            labels = inputs.get("labels")
            self.examples_seen += int(labels.shape[0]) if labels is not None else 0
            return super().training_step(model, inputs, num_items_in_batch)

    return BmcoreTrainer


class RunFolderProgress:
    """The methods of bmcore's ``TrainerCallback`` (:func:`make_callback`): writes progress to ``metrics.jsonl``,
    honours stop requests, and refuses NaN losses."""

    def __init__(self, run_dir: Path, precision: str) -> None:
        self.run_dir = run_dir
        self.precision = precision
        self.t0 = time.time()
        self.last_t = self.t0
        self.last_step = 0
        self.last_tokens = 0
        self.last_examples = 0
        self.train_s = 0.0  # seconds spent in training steps, evaluations and checkpoint saves excluded
        self.mark = self.t0
        self.cancelled = False
        self.trainer: Any = None  # set after the Trainer is built; counts the examples of each step
        # (step, time, train_s, examples) at the end of the first step: the ETA leaves out its warm-up
        self.first_step_end: tuple[int, float, float, int] | None = None
        self.evaluations = 0  # evaluations (each with its checkpoint save) in this process
        self.passes_after = 0.0  # validation-sized passes the job makes after training (fine_tune sets it)

    def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
        self.t0 = self.last_t = self.mark = time.time()
        self.last_step = state.global_step
        self.last_tokens = state.num_input_tokens_seen
        self.last_examples = self.examples(state, args)
        if state.is_world_process_zero:
            runs.write_status(self.run_dir, total_steps=state.max_steps, precision=self.precision, phase="training")

    def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
        now = time.time()
        self.train_s += now - self.mark
        self.mark = now
        if self.first_step_end is None:
            self.first_step_end = (state.global_step, now, self.train_s, self.examples(state, args))
        # Progress by time as well as by step: on a slow machine 10 steps can take minutes. Not under DDP,
        # where logging gathers across ranks and every rank must decide alike.
        if now - self.last_t >= PROGRESS_EVERY_S and world_size() == 1:
            control.should_log = True
        if state.global_step >= state.max_steps:
            control.should_log = True  # a last progress line: a finished run shows its final epoch and learning rate
        if runs.stop_requested(self.run_dir):
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # a checkpoint to resume from
        return control

    def on_evaluate(self, args, state, control, **kw):  # noqa: ANN001
        self.mark = time.time()
        self.evaluations += 1

    def on_save(self, args, state, control, **kw):  # noqa: ANN001
        self.mark = time.time()

    def examples(self, state: Any = None, args: Any = None) -> int:
        """Examples trained on so far: counted by bmcore's trainer, else steps x the fixed batch."""
        if self.trainer is not None and hasattr(self.trainer, "examples_seen"):
            return self.trainer.examples_seen * max(world_size(), 1)
        if state is None or args is None:
            return 0
        return (state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps
                * max(args.world_size, 1))

    def planned_evaluations(self, state: Any, args: Any) -> int:
        """Evaluations of the whole run: one per epoch, or one every ``eval_steps`` steps."""
        strategy = getattr(args.eval_strategy, "value", args.eval_strategy)
        if strategy == "epoch":
            return math.ceil(state.num_train_epochs or 1)
        every = state.eval_steps or args.eval_steps
        return state.max_steps // int(every) if strategy == "steps" and every and every >= 1 else 0

    def remaining(self, state: Any, args: Any, now: float) -> float | None:
        """Seconds until the job ends, from this run's own speed: its steps (training time only), the evaluations
        still to come (as long as those so far, each with its save; before the first, the validation split at
        :data:`EVAL_COST` of a training example each) and the scoring after training. None
        until two steps past the first are measured."""
        if self.first_step_end is None or state.global_step - self.first_step_end[0] < 2:
            return None
        step0, t0, train0, examples0 = self.first_step_end
        trained = self.train_s - train0
        if self.evaluations:
            per_eval = max((now - t0) - trained, 0.0) / self.evaluations
        else:
            n_val = len(self.trainer.eval_dataset) if getattr(self.trainer, "eval_dataset", None) is not None else 0
            per_eval = n_val * EVAL_COST * trained / max(self.examples(state, args) - examples0, 1)
        done = sum(1 for h in state.log_history if "eval_loss" in h)
        return time_left(state.max_steps - state.global_step, trained / (state.global_step - step0),
                         self.planned_evaluations(state, args) - done, per_eval, self.passes_after)

    def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise BmcoreError(f"the training loss became {loss} at step {state.global_step}; "
                              "lower the learning rate or check the data")
        if not state.is_world_process_zero:
            return
        now = time.time()
        elapsed = now - self.t0
        if "eval_loss" in logs:
            rec = {"kind": "eval", "step": state.global_step, "epoch": round(state.epoch or 0, 4),
                   "elapsed_s": round(elapsed, 2), "train_s": round(self.train_s, 2), "examples": self.examples(state, args),
                   **{k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}}
            runs.append_metrics(self.run_dir, rec)
            return
        if loss is None:
            return
        dt = max(now - self.last_t, 1e-9)
        samples = self.examples(state, args) - self.last_examples
        tokens = state.num_input_tokens_seen - self.last_tokens
        remaining = self.remaining(state, args, now)
        rec = {"kind": "train", "step": state.global_step, "total_steps": state.max_steps,
               "epoch": round(state.epoch or 0, 4), "loss": loss, "learning_rate": logs.get("learning_rate"),
               "grad_norm": logs.get("grad_norm"), "samples_per_s": round(samples / dt, 2),
               "tokens_per_s": round(tokens / dt, 1), "elapsed_s": round(elapsed, 2),
               "train_s": round(self.train_s, 2), "examples": self.examples(state, args), "tokens": state.num_input_tokens_seen,
               "remaining_s": round(remaining, 1) if remaining is not None else None, "ts": round(now, 2)}
        runs.append_metrics(self.run_dir, rec)
        log.info("step %d/%d loss %.4f lr %.2e %.1f samples/s", state.global_step, state.max_steps, loss,
                 logs.get("learning_rate") or 0, rec["samples_per_s"])
        self.last_t, self.last_step, self.last_tokens = now, state.global_step, state.num_input_tokens_seen
        self.last_examples = self.examples(state, args)

    resumed_from: int | None = None


def make_callback(run_dir: Path, config: TrainConfig, precision: str) -> Any:
    """bmcore's ``TrainerCallback`` for a run folder (:class:`RunFolderProgress`; transformers loads on first use)."""
    from transformers import TrainerCallback

    callback = type("RunFolderCallback", (RunFolderProgress, TrainerCallback), {})
    return callback(run_dir, precision)


CONV_FP32_REASON = ("fp32: convolutions train faster in fp32 (channels-last) than in bf16 autocast on a CPU with "
                    "AVX512-BF16 but no AMX (EfficientNet-Lite0 at 64 px: 204 vs 126 images/s on 2 cores)")


def device_plan(config: TrainConfig, device: DeviceInfo, convolutional: bool = False) -> dict[str, Any]:
    """How a run uses ``device``: precision (with a notice when it fell back), attention kernel and Trainer's device flags.

    ``convolutional``: the model is a CNN (ResNet, ConvNeXt, EfficientNet). With precision auto on a CPU whose fast
    bf16 is AVX512-BF16 only, it trains in fp32: bf16 autocast pays off there for matmuls, not for convolutions.
    A pure function of the config and the device, so the CUDA path is tested on machines without a GPU.
    """
    precision, notice = select_precision(config.precision, device)
    reason = device.reason_for(precision)
    if (convolutional and (config.precision or "auto") == "auto" and device.kind == "cpu" and precision == "bf16"
            and device.detail != "AMX"):
        precision, reason = "fp32", CONV_FP32_REASON
    attn = config.attn_implementation
    if attn == "auto":
        attn = "eager" if device.kind == "cpu" else "sdpa"
    return {"precision": precision, "notice": notice, "reason": reason, "attn_implementation": attn,
            "bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": device.kind == "cpu"}


def mean_examples_per_step(config: TrainConfig, lengths: list[int]) -> float:
    """Examples in an average training step for texts of these token ``lengths``.

    ``per_device_train_batch_size`` unless short texts ride in larger batches (``batch_growth``).
    The learning rate is not scaled to those batches: on SST-2 the square-root rule (about 2e-4 at
    ~124 examples a step) needed 36-38k examples to reach 0.88 dev accuracy, the unscaled 1e-4 with
    hidden dropout 0 needed 22-31k over two seeds (bench/NOTES.md).
    """
    if config.batch_growth <= 1 or not lengths:
        return float(config.per_device_train_batch_size)
    return TokenBudgetBatchSampler(lengths, config.per_device_train_batch_size, config.max_seq_length,
                                   config.batch_growth).mean_batch_size()


def start_job(config: TrainConfig, run_dir: Path, main: bool) -> tuple[DeviceInfo, dict[str, Any], ModelRef]:
    """What every job (fine-tuning or pretraining) settles first: the device, its plan, and the base model.

    A precision fallback is logged and recorded in ``status.json``; a ``max_seq_length`` above the
    model's limit is refused.
    """
    device = detect_device()
    mref = resolve_model(config.model_name_or_path)
    plan = device_plan(config, device, convolutional=is_convolutional(mref))
    log.info("precision %s", plan["reason"])
    if plan["notice"]:
        log.warning(plan["notice"])
        if main:
            runs.write_status(run_dir, notice=plan["notice"])
    check_max_seq_length(config.max_seq_length, mref)
    return device, plan, mref


def build_training_args(config: TrainConfig, run_dir: Path, precision: str, n_train: int, **overrides: Any) -> Any:
    """``TrainingArguments`` for a config: dynamic padding, length grouping, the chosen precision; ``overrides``
    (from the task: images have no token lengths, and decode in DataLoader workers) replace any of them."""
    from transformers import TrainingArguments

    device = detect_device()
    steps = config.eval_strategy == "steps"
    best = config.metric_for_best_model
    kwargs: dict[str, Any] = dict(
        output_dir=str(run_dir),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler_type,
        seed=config.seed,
        eval_strategy=config.eval_strategy,
        save_strategy=config.eval_strategy,
        eval_steps=config.eval_steps if steps else None,
        save_steps=(config.save_steps or config.eval_steps) if steps else None,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=True,
        metric_for_best_model="loss" if best == "loss" else best,
        greater_is_better=best != "loss",
        save_total_limit=config.save_total_limit,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device_plan(config, device)["use_cpu"],
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        report_to=trainer_report_to(config),  # the tracker's integration (bmcore.tracking sets it up), or none
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # the filter would log a NaN loss as a number and hide it from our NaN stop
        dataloader_num_workers=0,
        save_only_model=False,
    )
    if config.max_steps is not None:
        kwargs["max_steps"] = config.max_steps
    else:
        kwargs["num_train_epochs"] = config.epochs
    kwargs.update(overrides)
    if steps and kwargs["save_steps"] != config.eval_steps:
        kwargs["load_best_model_at_end"] = False  # Trainer needs saves to line up with evaluations
    return TrainingArguments(**kwargs)


TRAINING_ARGS_PICKLE = "training_args.bin"  # transformers' name (trainer.TRAINING_ARGS_NAME)


def save_model_atomically(trainer: Any, tokenizer: Any, run_dir: Path, meta: dict[str, Any],
                           finish: Callable[[Path], None] | None = None) -> Path:
    """Save into a temporary folder, then swap it in: a crash mid-save leaves the previous ``model/`` intact.

    ``finish`` may complete the temporary folder before the swap (pretraining adds the base's pooler).
    """
    final = run_dir / runs.MODEL_DIR
    with atomic_folder(final) as tmp:  # a half-written copy is removed: it must not fill the disk further
        trainer.save_model(str(tmp))
        # The Trainer also pickles its TrainingArguments here; nothing loads it, config.json holds the settings, and
        # model/ travels (zip, Hub, an MLflow artifact, a server): safetensors and JSON only.
        (tmp / TRAINING_ARGS_PICKLE).unlink(missing_ok=True)
        tokenizer.save_pretrained(str(tmp))
        write_model_meta(tmp, **meta)
        if finish is not None:
            finish(tmp)
    return final
