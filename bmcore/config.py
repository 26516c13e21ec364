"""``TrainConfig``: every setting of a fine-tuning run, with Hugging Face names and a help string each.

The same dataclass feeds the Train page's widgets, the CLI's flags (``--learning-rate``) and
the run folder's ``config.json``, so the three never disagree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .device import PRECISIONS
from .errors import BmcoreError
from .files import read_json
from .labels import LABEL_DELIMITERS
from .limits import check_epochs
from .models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL
from .problem_types import AUTO, FINE_TUNE_TYPES, MASKED_LM
from .workspace import check_regular

DEFAULT_EPOCHS = 3.0
BEST_METRICS = ("macro_f1", "accuracy", "loss", "pearson")
INTERVALS = ("epoch", "steps")
CLASS_WEIGHTS = ("none", "balanced", "sqrt", "auto")
PROBLEM_TYPES = (AUTO, *FINE_TUNE_TYPES)  # every task that fine-tunes a head
REPORT_TO = ("none", "tensorboard", "mlflow")  # experiment trackers a run reports to (bmcore.tracking)
MAX_SEQ_LENGTH_RANGE = (8, 8192)  # tokens: the max_seq_length a config takes (the pages' inputs offer the same)


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


def _is_uri(value: str) -> bool:
    """A tracking URI MLflow takes: ``scheme:rest`` (http, https, sqlite, postgresql, file, databricks, ...) or an
    absolute path, on one line."""
    scheme, colon, rest = value.partition(":")
    if scheme.startswith("sqlite") and not rest.startswith("////"):
        return False  # a relative database would land wherever the job's process happens to run
    return value.isprintable() and bool(value.strip()) and (
        value.startswith("/") or bool(colon and rest and scheme.replace("+", "").isalnum()))


def _holds_password(uri: str) -> bool:
    """True when a URI carries a password (``http://me:secret@host``); an unparseable one is left to :func:`_is_uri`."""
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return False


@dataclass
class TrainConfig:
    """Settings of one fine-tuning run. Checked on creation; bad values raise ``ValueError`` with a plain message."""

    model_name_or_path: str = _f(DEFAULT_MODEL, "Base model: builtin:minilm, a local save_pretrained folder, or a Hub id (online).")
    dataset: str = _f("builtin:bbc-news", "A prepared dataset's name in the workspace, or any data source (file, folder, builtin:bbc-news).")
    text_column: list[str] | None = _f(None, "Text column(s) of a raw source; two for text pairs. Auto-detected when empty.")
    label_column: str | None = _f(None, "Label column of a raw source. Auto-detected when empty.")
    problem_type: str = _f(AUTO, "What the model learns: auto (from the dataset), single_label_classification (one class "
                           "per text, softmax), multi_label_classification (any number of labels per text, a sigmoid each) "
                           "or regression (a score per text, mean squared error).",
                           choices=PROBLEM_TYPES)
    label_columns: list[str] | None = _f(None, "Multi-label raw source: several 0/1 columns, one per label. Auto-detected when empty.")
    label_delimiter: str | None = _f(None, "Multi-label raw source: the label column holds several labels separated by this "
                                           "(, ; | or json for JSON lists). Auto-detected when empty.", choices=LABEL_DELIMITERS)
    max_seq_length: int = _f(DEFAULT_MAX_SEQ_LENGTH, "Tokens per input; longer texts are truncated. Shorter is faster (cost grows faster than length).")
    num_train_epochs: float | None = _f(None, f"Passes over the training data. Empty (0 on the Train page): auto, "
                                        f"{DEFAULT_EPOCHS:g}, or on a small text dataset more epochs in batches of "
                                        "per_device_train_batch_size, so the run makes enough optimiser steps (bmcore.schedule). "
                                        "Give this or max_steps.")
    max_steps: int | None = _f(None, "Total optimizer steps; overrides epochs. Give this or num_train_epochs.")
    learning_rate: float = _f(1e-4, "Peak learning rate of AdamW for batches of per_device_train_batch_size; small encoders like MiniLM like 1e-4, "
                                 "BERT-base 2e-5 to 5e-5. Multi-label data starts at 3e-4 (with batch_growth 2): each label learns from "
                                 "its own few positives. Image data starts at 1e-3 (the built-in EfficientNet-Lite0, a CNN); "
                                 "ViT-like models want 1e-4 or less.")
    head_learning_rate: float | None = _f(None, "Peak learning rate of the parts the checkpoint did not train for this "
                                          "task: the new classification head (and the pooler). Empty: learning_rate. Multi-label "
                                          "data starts at 3e-3: each label's few positives teach its head row slowly.")
    per_device_train_batch_size: int = _f(32, "Training examples per step on each device.")
    batch_growth: int = _f(4, "Short texts ride in larger batches: up to this many times per_device_train_batch_size examples, "
                           "while a batch's padded tokens stay within per_device_train_batch_size x max_seq_length (memory never "
                           "exceeds a full batch of the longest texts). The learning rate stays as set. Fewer, fuller steps: "
                           "faster on short texts. 1 turns it off.")
    per_device_eval_batch_size: int = _f(64, "Evaluation examples per batch on each device.")
    gradient_accumulation_steps: int = _f(1, "Steps whose gradients add up before one update (a larger effective batch).")
    warmup_steps: float = _f(0.03, "Linear warm-up: a step count, or a ratio of all steps when below 1. Short (3%) so a 3-epoch run learns early.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    lr_scheduler_type: str = _f("linear", "Learning-rate schedule after warm-up (linear, cosine, constant, ...).")
    precision: str = _f("auto", "auto (bf16 on capable CPUs/GPUs, else fp16 on GPU, else fp32), fp32, fp16 or bf16.", choices=PRECISIONS)
    seed: int = _f(42, "Random seed for initialisation and data order.")
    eval_strategy: str = _f("epoch", "When to evaluate and save: every epoch, or every eval_steps steps.", choices=INTERVALS)
    eval_steps: int | None = _f(None, "Steps between evaluations and checkpoints when eval_strategy is steps.")
    save_steps: int | None = _f(None, "Steps between checkpoints (defaults to eval_steps).")
    logging_steps: int = _f(10, "Steps between progress lines in metrics.jsonl.")
    early_stopping_patience: int = _f(0, "Stop after this many evaluations without improvement (0: off).")
    metric_for_best_model: str = _f("macro_f1", "Validation metric that picks the best checkpoint.", choices=BEST_METRICS)
    class_weights: str = _f("auto", "Weigh the loss towards rare classes: none; balanced (inverse class frequency); sqrt (its "
                               "square root, milder); auto (balanced when the largest class has 3x the examples of the smallest; "
                               "multi-label: positive weights, sqrt(negatives/positives) per label, when label frequencies differ 3x).",
                            choices=CLASS_WEIGHTS)
    attention_dropout: float = _f(0.0, "Dropout on attention probabilities. 0 (the default) lets PyTorch use its fused attention "
                                  "kernel, 1.7x faster at 256 tokens on a CPU; the checkpoint's own value (often 0.1) is slower.")
    hidden_dropout: float | None = _f(0.0, "Dropout on hidden states and the classifier input. 0 (the default) is 1.2x faster "
                                      "on short texts and learned SST-2 no worse; empty keeps the checkpoint's value (0.1 for BERT).")
    attn_implementation: str = _f("auto", "Attention kernel for training: auto (eager on a CPU, where PyTorch's fused attention "
                                  "backward is slower: measured 1.3x faster at 16 tokens, 1.4x at 128; sdpa on a GPU), eager or sdpa.",
                                  choices=("auto", "eager", "sdpa"))
    freeze_embeddings: bool = _f(False, "Keep the word-embedding matrix fixed (faster updates; about half the parameters).")
    save_total_limit: int = _f(2, "Checkpoints kept on disk (the best one is always kept).")
    image_size: int | None = _f(None, "Images: the side in pixels the model sees (square). Empty: auto, the model's own size for "
                                "ViT-like models (their position embeddings fix it), else twice the data's typical side rounded "
                                "up to a multiple of 32 (three times below 300 training images per class), at most the "
                                "model's size (Fashion-MNIST's 28 px: 64, or 96 on a small set). Cost grows with its square.")
    augment: bool = _f(True, "Images: light augmentation of the training split (random resized crop, horizontal flip); "
                             "evaluation never augments.")
    dataloader_num_workers: int | None = _f(None, "Processes that decode and augment images while the model trains. Empty: "
                                            "auto (images: 2 when the machine has 2 cores or more; text: 0).")
    score_test: bool = _f(True, "Score the test split when training ends. A search's trials (python -m bmcore tune) leave it "
                                "unscored: they are compared on validation, and only the chosen trial's test split is scored, once.")
    few_shot: bool = _f(False, "Few-shot training (SetFit) for texts with a few dozen labelled examples per class: the body "
                               "learns from pairs of examples (same class or not), then a logistic regression fits on its "
                               "embeddings; saved as an ordinary classifier. Uses the model, max_seq_length, seed, learning_rate (the "
                               "body's) and max_steps (the cap on steps of 16 pairs; default 120).")
    few_shot_label_names: bool = _f(True, "Few-shot training also learns from the class names: each becomes 8 examples "
                                          "'This sentence is NAME' of its class (SetFit's templated examples). Skipped "
                                          "when the names are codes (LABEL_0, class 3, 7).")
    report_to: str = _f("none", "Experiment tracker the run reports to through the Trainer's own integration: none; "
                        "tensorboard (event files in the run folder's tensorboard/); mlflow (an MLflow run with the "
                        "settings, the curves, the test metrics and model/ as an artifact). Needs pip install -r "
                        "requirements-tracking.txt.", choices=REPORT_TO)
    tracking_uri: str | None = _f(None, "report_to mlflow: the MLflow tracking store, a server URL (http://host:5000) "
                                  "or a database (sqlite:////path/mlflow.db). Empty: the workspace's own SQLite store, "
                                  "WORKSPACE/mlflow.db.")
    experiment_name: str | None = _f(None, "report_to mlflow: the MLflow experiment the run joins (created when new). "
                                     "Empty: the dataset's name.")

    def __post_init__(self) -> None:
        self.validate()

    @property
    def epochs(self) -> float:
        """Epochs to train when ``max_steps`` is not set."""
        return self.num_train_epochs if self.num_train_epochs is not None else DEFAULT_EPOCHS

    def validate(self) -> None:
        """Raise :class:`BmcoreError` (a ``ValueError``) naming the first bad setting."""
        if isinstance(self.text_column, str):
            self.text_column = [self.text_column]
        lo, hi = MAX_SEQ_LENGTH_RANGE
        checks = [
            (bool(str(self.model_name_or_path).strip()), "model_name_or_path is empty; try builtin:minilm"),
            (bool(str(self.dataset).strip()), "dataset is empty; prepare one on the Data page or try builtin:bbc-news"),
            (self.learning_rate > 0, f"learning_rate must be positive, not {self.learning_rate}"),
            (self.learning_rate < 1, f"learning_rate {self.learning_rate} is far too large; try 1e-4"),
            (self.head_learning_rate is None or 0 < self.head_learning_rate < 1,
             f"head_learning_rate must be between 0 and 1, not {self.head_learning_rate}"),
            (self.per_device_train_batch_size >= 1, f"per_device_train_batch_size must be at least 1, not {self.per_device_train_batch_size}"),
            (self.per_device_eval_batch_size >= 1, f"per_device_eval_batch_size must be at least 1, not {self.per_device_eval_batch_size}"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1"),
            (1 <= self.batch_growth <= 64, f"batch_growth must be between 1 (off) and 64, not {self.batch_growth}"),
            (lo <= self.max_seq_length <= hi, f"max_seq_length must be between {lo} and {hi} tokens, not {self.max_seq_length}"),
            (not (self.num_train_epochs is not None and self.max_steps is not None),
             "give either num_train_epochs or max_steps, not both"),
            (self.num_train_epochs is None or self.num_train_epochs > 0, f"num_train_epochs must be positive, not {self.num_train_epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be at least 1, not {self.max_steps}"),
            (self.warmup_steps >= 0, f"warmup_steps must be zero or more, not {self.warmup_steps}"),
            (self.weight_decay >= 0, f"weight_decay must be zero or more, not {self.weight_decay}"),
            (0 <= self.attention_dropout < 1, f"attention_dropout must be in [0, 1), not {self.attention_dropout}"),
            (self.hidden_dropout is None or 0 <= self.hidden_dropout < 1,
             f"hidden_dropout must be in [0, 1), not {self.hidden_dropout}"),
            (self.attn_implementation in ("auto", "eager", "sdpa"), "attn_implementation must be auto, eager or sdpa"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"),
            (self.eval_strategy in INTERVALS, f"eval_strategy must be epoch or steps, not {self.eval_strategy!r}"),
            (self.eval_strategy != "steps" or (self.eval_steps or 0) >= 1, "eval_strategy steps needs eval_steps of at least 1"),
            (self.save_steps is None or self.save_steps >= 1, "save_steps must be at least 1"),
            (self.logging_steps >= 1, "logging_steps must be at least 1"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be zero (off) or more"),
            (self.metric_for_best_model in BEST_METRICS, f"metric_for_best_model must be one of {', '.join(BEST_METRICS)}"),
            (self.problem_type in PROBLEM_TYPES,
             f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, not {self.problem_type!r}"),
            (self.class_weights in CLASS_WEIGHTS, f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, not {self.class_weights!r}"),
            (self.save_total_limit >= 1, "save_total_limit must be at least 1"),
            (self.text_column is None or len(self.text_column) in (1, 2), "text_column takes one column, or two for pairs"),
            (self.image_size is None or 16 <= self.image_size <= 1024, f"image_size must be between 16 and 1024 pixels, not {self.image_size}"),
            (self.dataloader_num_workers is None or 0 <= self.dataloader_num_workers <= 64,
             f"dataloader_num_workers must be between 0 and 64, not {self.dataloader_num_workers}"),
            (self.report_to in REPORT_TO, f"report_to must be one of {', '.join(REPORT_TO)}, not {self.report_to!r:.40}"),
            (self.report_to == "mlflow" or (self.tracking_uri is None and self.experiment_name is None),
             "tracking_uri and experiment_name are MLflow's: give them with report_to mlflow"),
            (self.tracking_uri is None or _is_uri(self.tracking_uri),
             f"tracking_uri {self.tracking_uri!r:.80} is not a URI with an absolute path; try http://localhost:5000 "
             "or sqlite:////absolute/path/mlflow.db"),
            (self.tracking_uri is None or not _holds_password(self.tracking_uri),
             "tracking_uri holds a password, which would be saved in the run's config.json and shown in its command: "
             "leave it out and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (a server) or PGPASSWORD (a "
             "database) where bmcore runs"),
            (self.experiment_name is None or 0 < len(self.experiment_name.strip()) <= 200 and self.experiment_name.isprintable(),
             "experiment_name must be 1 to 200 printable characters"),
        ]
        for ok, message in checks:
            if not ok:
                raise BmcoreError(message)

        check_epochs(self.epochs, self.max_steps)  # a public demo caps the epochs

    @property
    def pretraining(self) -> bool:
        """True for a masked-LM pretraining run (:class:`PretrainConfig`), False for a fine-tune."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, refusing unknown keys with their names."""
        if not isinstance(data, dict):
            raise BmcoreError("a training config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BmcoreError(f"unknown config key(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise BmcoreError(f"bad training config: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a config JSON file."""
        check_regular(path)  # a FIFO would block the read forever
        return cls.from_dict(read_json(path, f"config file {path}"))

    def cli_args(self) -> list[str]:
        """The non-default settings as CLI flags (``--learning-rate 0.0001``), for the command preview."""
        out: list[str] = []
        defaults = type(self)(model_name_or_path=self.model_name_or_path, dataset=self.dataset)
        for f in dataclasses.fields(self):
            if f.name in ("model_name_or_path", "dataset", "task"):
                continue
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name) or value is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag if value else f"--no-{f.name.replace('_', '-')}")
            elif isinstance(value, list):
                for v in value:
                    out += [flag, str(v)]
            else:
                out += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return out


FINE_TUNE = "fine_tune"  # config.json's ``task``: the job a run folder holds (fine-tuning, or masked-LM pretraining)
TASKS = (FINE_TUNE, MASKED_LM)
LEGACY_TASKS = {"classification": FINE_TUNE, "mlm": MASKED_LM}  # the names run folders made before 2026-12-06 hold


def task_of(data: dict[str, Any]) -> str:
    """The job a config dict describes (:data:`TASKS`), the names of older run folders read as today's."""
    task = data.get("task") or FINE_TUNE
    return LEGACY_TASKS.get(task, task) if isinstance(task, str) else task


@dataclass
class PretrainConfig(TrainConfig):
    """Settings of a masked-language-model pretraining run (``task`` masked_lm, the problem type it learns): a
    :class:`TrainConfig` with MLM defaults.

    ``dataset`` is any text source: a prepared dataset (labels ignored) or a plain text file.
    """

    dataset: str = _f("", "Unlabelled text: a prepared dataset's name (its labels are ignored), a .txt file with one "
                      "document per line or per blank-line block, or any data source with a text column.")
    task: str = _f(MASKED_LM, "What the run trains: masked_lm (masked-language-model pretraining).", choices=(MASKED_LM,))
    mlm_probability: float = _f(0.15, "Share of tokens hidden for the model to predict (BERT used 0.15).")
    max_steps: int | None = _f(300, "Total optimizer steps; overrides epochs. Give this or num_train_epochs.")
    learning_rate: float = _f(1e-4, "Peak learning rate of AdamW; 5e-5 to 1e-4 keeps what the encoder knows.")
    hidden_dropout: float | None = _f(None, "Dropout on hidden states; empty keeps the checkpoint's (0.1 for BERT, as in its "
                                      "own pretraining).")
    eval_strategy: str = _f("steps", "When to measure held-out perplexity and save: every eval_steps steps, or every epoch.",
                            choices=INTERVALS)
    eval_steps: int | None = _f(50, "Steps between perplexity evaluations and checkpoints.")
    metric_for_best_model: str = _f("loss", "Pretraining keeps the final model; the held-out MLM loss is tracked.",
                                    choices=("loss",))

    @property
    def pretraining(self) -> bool:
        return True

    def validate(self) -> None:
        """Raise :class:`BmcoreError` naming the first bad setting."""
        super().validate()
        self.task = LEGACY_TASKS.get(self.task, self.task)
        if self.task not in TASKS[1:]:
            raise BmcoreError(f"task must be {MASKED_LM} for a pretraining run, not {self.task!r}")
        if not 0 < self.mlm_probability < 1:
            raise BmcoreError(f"mlm_probability must be between 0 and 1, not {self.mlm_probability}")
        if self.metric_for_best_model != "loss":
            raise BmcoreError("metric_for_best_model must be loss for a pretraining run")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` or, for ``task`` masked_lm, a :class:`PretrainConfig` (what a run's ``config.json``
    holds)."""
    task = task_of(data) if isinstance(data, dict) else None
    if task not in TASKS:
        raise BmcoreError(f"unknown task {task!r} in the config; expected one of {', '.join(TASKS)}")
    return (TrainConfig if task == FINE_TUNE else PretrainConfig).from_dict(data)


def config_fields() -> list[dataclasses.Field]:
    """The fields of :class:`TrainConfig`, with ``metadata['help']``, for UIs and CLIs."""
    return list(dataclasses.fields(TrainConfig))
