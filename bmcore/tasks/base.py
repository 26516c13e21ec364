"""The interface every task implements (:class:`Task`), with the defaults classification tasks share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..display import md, md_code
from ..errors import BmcoreError
from ..modalities import modality_of_ref
from ..models import dropout_overrides, load_classifier, load_tokenizer
from ..search_space import SearchParam

MISSED_RECALL = 0.1  # a class or label recalled this rarely or less is "never or almost never predicted right"
PROB_PREFIX = "prob_"  # a prediction table's column of one class's (label's) score: prob_<label>
# transformers' classification pipelines' ``function_to_apply`` (and the Inference API's): how raw logits become the
# scores a caller asked for, whatever the model's task would give by default.
FUNCTIONS_TO_APPLY = ("softmax", "sigmoid", "none")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return z.copy()
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def apply_function(logits: np.ndarray, name: str) -> np.ndarray:
    """Logits [n, outputs] turned into scores as a pipeline's ``function_to_apply=name`` does (one of
    :data:`FUNCTIONS_TO_APPLY`; ``none``: the logits themselves)."""
    if name not in FUNCTIONS_TO_APPLY:
        raise BmcoreError(f"function_to_apply {name!r} is not one of {', '.join(FUNCTIONS_TO_APPLY)}")
    z = np.asarray(logits, dtype=np.float64)
    return softmax(z) if name == "softmax" else sigmoid(z) if name == "sigmoid" else z


class Task:
    """What differs between kinds of problem. Subclasses override what they change; see :mod:`bmcore.tasks`."""

    problem_type: str = ""
    title: str = ""
    modality = "text"  # what the inputs are: "text", or "image" (a prepared dataset's ``modality``)
    # The training loop that trains this task's models, by its name in bmcore.train.LOOPS: the shared fine-tuning
    # loop, or masked-language-model pretraining (bmcore.pretrain.train_mlm). A task names its loop; it does not import
    # it (the loops import the data layer, which asks the tasks).
    loop = "fine_tune"
    defaults: dict[str, Any] = {}  # TrainConfig settings this task starts from instead of TrainConfig's own defaults
    label_quality = False  # True: bmcore.quality can score its datasets' labels (one class per row)
    quality_encoders: tuple[str, ...] = ()  # the features its label-quality check can use, the default first
    more_data = "add training examples"  # what to try against overfitting, besides fewer epochs and a lower rate
    # A run on its defaults (no epochs or steps set) makes at least this many optimiser steps: small data trains more
    # epochs (bmcore.schedule). 0: no such rule.
    min_train_steps = 0
    grows_batches = True  # short inputs ride in larger batches (TrainConfig.batch_growth); images: no
    example_noun = "rows"  # what one training example is called in sentences ("300 training rows")
    pipeline_kwargs = ""  # more arguments of transformers.pipeline for this task's saved model (", top_k=None")
    # The metrics that sum up a split, in eval.json's key names, the first the one a runs table shows; and how each
    # is called in a sentence.
    headline: tuple[str, ...] = ("accuracy", "macro_f1")
    metric_names: dict[str, str] = {"accuracy": "accuracy", "macro_f1": "macro F1"}
    label_unit = "classes"  # what a dataset's label names are called in a count ("4 classes")
    # The Evaluate page's results sections, top to bottom, by their keys in the page's registry (pages/evaluate.py:
    # DRAWERS); the modality may leave some out (bmcore.modalities.base.Modality.evaluate_sections).
    evaluate_sections: tuple[str, ...] = ("summary", "confusion", "errors", "gold", "per_class", "curves", "calibration",
                                          "compare")

    # --- data -> targets ---------------------------------------------------------------------

    def check_dataset(self, dataset: Any) -> None:
        """Refuse, in one line, a prepared dataset this task cannot learn from (by default: another problem type)."""
        kind = getattr(dataset, "problem_type", None) or "single_label_classification"
        modality = getattr(dataset, "modality", None) or "text"
        if modality != self.modality:
            raise BmcoreError(f"dataset {dataset.name!r} holds {modality} data, but the model learns from {self.modality}; "
                              f"choose a{'n' if self.modality == 'image' else ''} {self.modality} model")
        if kind != self.problem_type:
            raise BmcoreError(f"dataset {dataset.name!r} is {kind} data, but the run asks for problem_type "
                              f"{self.problem_type}; use problem_type auto")

    def label_names(self, dataset: Any) -> list[str]:
        return list(dataset.label_names)

    def targets(self, df: pd.DataFrame, label_names: Sequence[str]) -> list[Any]:
        """The model target of each row of a prepared split (the ``labels`` column Trainer feeds the model)."""
        raise NotImplementedError

    def gold(self, df: pd.DataFrame, label_names: Sequence[str]) -> Any:
        """The gold labels of a split in the form :meth:`decide` returns predictions (checked against ``label_names``)."""
        raise NotImplementedError

    # --- inputs -> model inputs ---------------------------------------------------------------

    def check_model(self, mref: Any, dataset: Any) -> None:
        """Refuse, in one line, a base model for another kind of input than this task's (a text model on images)."""
        kind = modality_of_ref(mref).name
        if kind != self.modality:
            raise BmcoreError(f"model {mref.ref!r} is a{'n' if kind == 'image' else ''} {kind} model, but dataset "
                              f"{dataset.name!r} holds {self.modality} data; choose a{'n' if self.modality == 'image' else ''} "
                              f"{self.modality} model")

    def load_processor(self, mref: Any, config: Any = None, dataset: Any = None) -> Any:
        """What turns raw inputs into model inputs and is saved with the model (a tokenizer for text)."""
        return load_tokenizer(mref)

    def encode_split(self, df: pd.DataFrame, processor: Any, config: Any, targets: list[Any], *, train: bool) -> Any:
        """One split as a dataset Trainer reads (``labels`` from ``targets``); ``train`` is True for the training split."""
        return tokenize_split(df, processor, config.max_seq_length, targets)

    def model_meta(self, processor: Any) -> dict[str, Any]:
        """Facts about the inputs saved with the model in ``bmcore.json`` (images: the image size)."""
        return {}

    def training_overrides(self, config: Any, n_train: int = 0, world_size: int = 1) -> dict[str, Any]:
        """``TrainingArguments`` this task sets differently from the text defaults (bmcore.trainer.build_training_args),
        for ``n_train`` training examples over ``world_size`` processes."""
        return {}

    # --- the model ---------------------------------------------------------------------------

    def load_model(self, mref: Any, label_names: Sequence[str], config: Any, plan: dict[str, Any]) -> Any:
        """The model to fine-tune: the base with a fresh head for ``label_names``, in the run's attention kernel."""
        model = load_classifier(mref, list(label_names), attn_implementation=plan["attn_implementation"],
                                **self.model_kwargs(),
                                **dropout_overrides(mref, config.attention_dropout, config.hidden_dropout))
        if config.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        return model

    def model_kwargs(self) -> dict[str, Any]:
        """Extra arguments for :func:`bmcore.models.load_classifier` (the ``problem_type`` saved in config.json)."""
        return {"problem_type": self.problem_type}

    def init_model(self, model: Any, targets: list[Any], config: Any, *, resume: bool = False) -> str | None:
        """Adjust a freshly built model before training (e.g. its head's bias; ``resume``: the checkpoint's weights
        will replace it, so only what weights do not hold); returns a line for the log, or None."""
        return None

    def before_save(self, model: Any) -> str | None:
        """Adjust the model just before ``model/`` is saved, finished or cancelled (regression folds its scaling into
        the head); returns a line for the log, or None."""
        return None

    def finish_training(self, model: Any, train: Any) -> str | None:
        """Adjust the trained model before it is scored and saved (``train``: the encoded training split; images
        recompute batch-norm statistics on it); returns a line for the log, or None."""
        return None

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def loss(self, config: Any, targets: list[Any], label_names: Sequence[str]) -> tuple[str, Callable[..., Any] | None, Any]:
        """The loss weighting used (a name), a ``compute_loss_func`` for Trainer (None: the model's own loss),
        and the weights to log (or None)."""
        return "none", None, None

    def validation_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        """Metrics of one evaluation during training: ``accuracy``, ``macro_f1`` and what else the task has."""
        raise NotImplementedError

    # --- logits -> scores -> labels ---------------------------------------------------------

    def scores(self, logits: np.ndarray, meta: dict[str, Any] | None = None, *, calibrated: bool = False) -> np.ndarray:
        """Scores in [0, 1] per class from logits [n, classes]."""
        raise NotImplementedError

    def torch_scores(self, logits: Any) -> Any:
        """The same on a torch tensor, differentiably (attributions explain these)."""
        raise NotImplementedError

    def decide(self, scores: np.ndarray, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[Any]:
        """The predicted labels per row: a class name (single-label) or a list of names (multi-label)."""
        raise NotImplementedError

    def thresholds(self, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[float] | None:
        """The decision threshold of each label (None when the task picks the top class)."""
        return None

    # --- after training, and scoring a split --------------------------------------------------

    def tune(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        """What to fit on the validation split after training and save with the model (``bmcore.json``).

        ``targets`` are the split's targets in the order of ``logits`` (Trainer's ``label_ids``: its evaluation
        batches are grouped by length, so they are not in the order of the split's rows)."""
        return {}

    def split_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The metrics training records in ``eval.json`` for a split (``targets`` in the order of ``logits``)."""
        raise NotImplementedError

    def evaluate(self, df: pd.DataFrame, logits: np.ndarray, label_names: Sequence[str], meta: dict[str, Any], *,
                 truncated: np.ndarray | None, validation: Callable[[], tuple[pd.DataFrame, np.ndarray]] | None,
                 fit: bool, n_bins: int) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], list[str]]:
        """Score a split for the Evaluate page: the prediction table, the metrics, what to save with the model
        (fitted on ``validation()`` when ``fit``), and notes."""
        raise NotImplementedError

    def missed_note(self, metrics: dict[str, Any], split: str = "test") -> str:
        """One plain-text warning naming the classes (or labels) a split's metrics show the model (almost) never gets
        right, with what to try; empty when there are none. ``metrics``: eval.json's ``test`` or an evaluation's."""
        return ""

    def baseline(self, train: pd.DataFrame, df: pd.DataFrame, label_names: Sequence[str], *, seed: int,
                 n_bins: int) -> dict[str, Any]:
        """The TF-IDF baseline trained on ``train`` and scored on ``df``, with the same metric keys."""
        raise NotImplementedError

    # --- what leaves the studio: predictions, the evaluate CLI, the model card, ONNX ------------------

    def record(self, decision: Any, scores: Sequence[float], label_names: Sequence[str],
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """One prediction as ``bmcore predict`` prints it (:func:`bmcore.inference.predict`): ``label`` (the
        decision) and ``scores`` (label -> score), from one row of :meth:`scores`."""
        return {"label": decision, "scores": {str(n): float(p) for n, p in zip(label_names, scores, strict=True)}}

    def explain_target(self, record: dict[str, Any]) -> str:
        """The label that attributions explain by default for a :meth:`record`: the predicted class."""
        return str(record["label"])

    # What the Playground draws of one prediction besides its tiles: "probabilities" (a bar per class), "thresholds"
    # (each label's score against its threshold) or "score" (the number alone). Attributions explain this output.
    playground_view = "probabilities"
    attribution_output = "probability"  # what attributions explain (bmcore.explain): the target's probability
    examples_per_group = 2  # the Playground's examples from each group of :meth:`example_groups`

    def explained_output(self, target: str) -> str:
        """How a sentence names the output attributions explain: ``P(target)``."""
        return f"P({target})"

    def prediction_tiles(self, record: dict[str, Any], gold: str | None = None
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """What the Playground shows of one prediction (a :meth:`record`) as ``st.metric`` arguments (names from data
        made inert), and, when the example's gold label is known (``gold``, as its dataset's label column holds it),
        a tile that compares it with the prediction (else None)."""
        label = str(record["label"])
        tiles = [{"label": "Prediction", "value": md(label)},
                 {"label": "Probability", "value": f"{record['scores'][label]:.1%}"}]
        if gold is None:
            return tiles, None
        right = gold == label
        return tiles, {"label": "True label", "value": md(gold), "delta": "right" if right else "wrong",
                       "delta_color": "normal" if right else "inverse", "delta_arrow": "off",
                       "help": "The example's label in its dataset."}

    def example_groups(self, labels: pd.Series, label_names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """Groups of a split's rows (by their ``label`` column) that the Playground draws examples from, each named,
        with a boolean mask: one per class."""
        values = labels.astype(str)
        return [(str(n), (values == str(n)).to_numpy()) for n in label_names]

    def gold_text(self, value: Any) -> str:
        """One gold value of a prepared split's ``label`` column as plain text (an example's button says it)."""
        return str(value)

    def summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """What ``bmcore evaluate`` prints of an evaluation's metrics (:meth:`evaluate`, ``baseline`` included): the
        headline figures next to the baseline's."""
        base = metrics.get("baseline")
        return {**{k: metrics.get(k) for k in self.headline},
                "baseline": {k: base.get(k) for k in self.headline} if base else None}

    # The model card's Hub eval results: (metric type, key in the metrics, name, metric args), in the card's order.
    card_metrics: tuple[tuple[str, str, str, dict[str, Any] | None], ...] = ()

    def card_test_metrics(self, test: dict[str, Any], baseline: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(model, baseline) for the card from ``eval.json``'s ``test`` and ``baseline`` (written by training), in
        the key names of a full evaluation's metrics, when the run has no full evaluation."""
        return test, baseline

    def card_has_results(self, model: dict[str, Any]) -> bool:
        """True when ``model`` (a full evaluation's metrics) holds this task's results for the card."""
        return model.get(self.card_metrics[0][1] if self.card_metrics else self.headline[0]) is not None

    def card_what(self, labels: Sequence[str], modality: str) -> str:
        """The card's first sentence, up to "fine-tuned": what the model is and predicts."""
        return f"A {modality} model with {len(labels)} outputs"

    def card_results(self, model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                     labels: Sequence[str]) -> list[str]:
        """The card's "Results on the test split" section (Markdown lines, every name from data made inert)."""
        return ["No test metrics were saved for this run.", ""]

    def card_labels(self, labels: Sequence[str]) -> str:
        """The card's Data section line that names what the model predicts."""
        return "- Classes: " + ", ".join(md_code(n) for n in labels)

    def card_data(self, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """More lines for the card's Data section, from ``bmcore.json`` and the run's ``config.json`` (images: size)."""
        return []

    def card_usage(self, dataset: str, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """The card from "Use it" on: how to load the saved folder and call it, the CLI, and the limitations."""
        return []

    # ONNX parity (bmcore.export.onnx): what the raw outputs are called, and the share of examples whose prediction
    # agrees between ONNX Runtime and PyTorch, by its key in parity.json.
    output_name = "logit"
    agreement_key = "label_agreement"

    def agreeing(self, got: np.ndarray, ref: np.ndarray, label_names: Sequence[str], meta: dict[str, Any],
                 atol: float) -> int:
        """How many examples get the same prediction from the logits ``got`` as from ``ref`` (ONNX Runtime's and
        PyTorch's): the same decision, as this task makes it (the class, or the whole label set at the thresholds)."""
        decide = lambda logits: self.decide(self.scores(logits, meta), label_names, meta)  # noqa: E731
        return sum(a == b for a, b in zip(decide(got), decide(ref), strict=True))

    def score_label_quality(self, ds: Any, rows: pd.DataFrame, labels: np.ndarray, *, encoder: str, folds: int,
                            seed: int, precision: str, report: Callable[[int, int, str], None]
                            ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """Label quality for ``ds`` (where :attr:`label_quality`): per row of ``rows`` (:func:`bmcore.quality.job.score_dataset`;
        ``labels`` their class ids) the scores, the conflicting pairs, and extra summary keys."""
        raise NotImplementedError

    # --- a dataset's labels: read, named, stored, split and counted (bmcore.data) ----------------------

    label_nouns = ("class", "classes")  # what one label name is called in the data's warnings and charts, and many
    weighs_classes = True  # class imbalance is answered by class weights (bmcore.data.stats warns about it)
    takes_class_weights = True  # the class_weights setting weighs this task's loss (the Train page offers it)
    few_shot = False  # True: few-shot training (bmcore.fewshot, SetFit) can fit it: the task gives its head and weights

    def few_shot_head(self) -> tuple[str | None, Any]:
        """SetFit's ``multi_target_strategy`` and the unfitted scikit-learn head for this task."""
        raise NotImplementedError

    def few_shot_weights(self, head: Any, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
        """The fitted head as one linear layer: (weight [labels, hidden], bias [labels]) whose logits give this task's
        scores, so the head folds into a transformers classifier (bmcore.fewshot.fold_into)."""
        raise NotImplementedError

    def search_space(self, settings: dict[str, Any]) -> list[Any]:
        """What a search (:mod:`bmcore.tune`) varies for this task besides its inputs' settings: class weights, where
        they weigh its loss."""
        return [SearchParam.choice("class_weights", ("none", "balanced", "sqrt"))] if self.takes_class_weights else []
    data_note = ""  # what `bmcore data prepare` notes about the label shape ("multi-label"; "" for nothing)
    rows_by_label = True  # each row has one of the label names, so a chart of rows can colour them by it

    def read_labels(self, df: pd.DataFrame, cols: Any, where: str) -> Any:
        """The label of each row of a source's table ``df`` with columns ``cols`` (:class:`bmcore.data.columns.Columns`),
        as :func:`bmcore.data.preparation.standardise` keeps it (None where a row has none: it is dropped);
        ``where`` names the table in errors."""
        raise NotImplementedError

    def found_labels(self, labels: pd.Series, cols: Any) -> list[str]:
        """The label names in a column of :meth:`read_labels`, in order (no checks)."""
        raise NotImplementedError

    def encode_found(self, labels: pd.Series) -> Any:
        """A column of :meth:`read_labels` as a prepared dataset stores it, label names in the order read."""
        return labels

    def prepared_labels(self, std: dict[str, pd.DataFrame], cols: Any) -> tuple[list[str], list[str] | None, str]:
        """The label names of a source's standardised frames (refused in one line when a model cannot learn them),
        each frame's ``label`` stored as a prepared dataset stores it (in place), and how to stratify the splits:
        the label names for iterative multi-label stratification (or None) and the column to stratify on (one
        other than ``label`` is a temporary column this added to every frame, dropped after splitting)."""
        raise NotImplementedError

    def label_counts(self, df: pd.DataFrame, label_names: Sequence[str]) -> dict[str, int]:
        """Rows of a prepared split that have each label (a score dataset: every row has its one output)."""
        raise NotImplementedError

    def label_masks(self, df: pd.DataFrame, label_names: Sequence[str]) -> Iterator[np.ndarray]:
        """For each label in order, which rows of a prepared split have it (booleans), one label at a time."""
        raise NotImplementedError

    def label_stats(self, splits: dict[str, pd.DataFrame], label_names: Sequence[str]) -> dict[str, Any]:
        """What this task adds to a prepared dataset's stats (:func:`bmcore.data.stats.compute_stats`) about its
        labels, replacing keys of the shared stats where they do not apply."""
        return {}

    def top_class(self, scores: np.ndarray) -> Any:
        """The id of the output with the highest score: of each row of ``scores`` [n, outputs] (an array of ids), or of
        one row [outputs] (an int). The class an explanation names and explains unless told another, the label a
        label-quality check suggests, and a single-label task's decision."""
        top = np.asarray(scores).argmax(axis=-1)
        return int(top) if top.ndim == 0 else top

    # --- what the pages show of it -----------------------------------------------------------------------

    # How the Train page's tiles sum up a finished run's eval.json, by its key in bmcore.report.RESULT_TILES:
    # "headline" (the first two headline metrics, test and validation) or "thresholds" (with the tuned thresholds' gain).
    result_tiles = "headline"
    training_text = ""  # one sentence on what this kind of problem means for training ("" where nothing needs saying)

    def prediction_frame(self, df: pd.DataFrame, probs: np.ndarray, label_names: Sequence[str], *,
                         truncated: np.ndarray | None = None) -> pd.DataFrame:
        """The prediction table of a split from this task's scores (:meth:`scores`) [n, classes]."""
        raise NotImplementedError


def card_number(x: Any, spec: str = ".4f") -> str:
    """A metric as the model card writes it: four decimals, ``-`` where there is none."""
    return "-" if x is None else format(x, spec)


def tokenize_split(df: Any, tokenizer: Any, max_seq_length: int, targets: list[Any]) -> Any:
    """Tokenise one split without padding (the collator pads each batch) into a ``datasets.Dataset``.

    ``targets`` (from the task) become the ``labels`` column; a ``length`` column lets Trainer group batches by length.
    """
    import datasets

    args = (df["text"].tolist(), df["text_pair"].tolist()) if "text_pair" in df else (df["text"].tolist(),)
    enc = tokenizer(*args, truncation=True, max_length=max_seq_length)
    cols = {k: list(v) for k, v in enc.items()}
    cols["labels"] = list(targets)
    cols["length"] = [len(x) for x in enc["input_ids"]]
    return datasets.Dataset.from_dict(cols)
