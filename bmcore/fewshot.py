"""Few-shot training (``TrainConfig.few_shot``): SetFit on a sentence-transformer body, saved as a standard classifier.

SetFit (Tunstall et al., 2022; the ``setfit`` library) fine-tunes the body contrastively on pairs built from the few
labels (a positive pair shares a class, a negative pair does not), then fits a logistic-regression head on the body's
embeddings. It learns far more from 8 or 16 examples per class than fine-tuning a fresh head does.

The saved ``model/`` is an ordinary ``AutoModelForSequenceClassification`` folder, so ``transformers.pipeline``,
Evaluate, the Playground and every export open it like any other run's:

* the body is trained with **first-token (CLS) pooling**, the token the checkpoint's own classification head reads;
* the class names teach too (``TrainConfig.few_shot_label_names``): each becomes :data:`NAME_EXAMPLES` examples
  "This sentence is NAME" of its class (SetFit's templated examples, ``setfit.get_templated_dataset``), unless the
  names are codes (:func:`names_usable`). Emotion, 8 per class, seed 0: test accuracy 0.431 without, 0.505 with;
* the head is folded into that classification head, a dense layer with tanh followed by a linear layer (BERT's
  pooler and classifier; RoBERTa's and MPNet's classification head): the dense layer becomes a small multiple of the
  identity, where tanh is linear to within :data:`TANH_AMPLITUDE` squared over 3, and the linear layer the head's
  weights divided by it. The fold is checked: the saved model's logits must equal the head's on the training texts.

:func:`fit_few_shot` is the fitting step (also the labelling loop's model); :func:`bmcore.train.few_shot` is the job's
loop (``LOOPS["few_shot"]``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .device import detect_device
from .errors import BmcoreError
from .modalities import get_modality

log = logging.getLogger("bmcore.fewshot")

BATCH_SIZE = 16  # pairs per step: SetFit's default
# The body's learning rate is the run's (TrainConfig.learning_rate: 1e-4 for MiniLM), not SetFit's 2e-5 for MPNet-base.
# Emotion, 16 per class, builtin:minilm, test accuracy: 2e-5 for 480 steps 0.482; 1e-4 for 120 steps 0.496 (240: 0.486);
# 3e-4 for 120 steps 0.489 (bench/few-shot-emotion-*.md).
BODY_LEARNING_RATE = 1e-4
MAX_STEPS = 120  # the default cap on steps of BATCH_SIZE pairs (1,920 pairs); max_steps sets it
NAME_TEMPLATE = "This sentence is {}"  # SetFit's own template for examples made of class names
NAME_EXAMPLES = 8  # examples made of each class name (SetFit's zero-shot recipe uses 8)
CODE_NAME = re.compile(r"(label|class|cat|category|c)?[\s_-]*\d+", re.IGNORECASE)  # LABEL_0, class 3, 7: no meaning
TANH_AMPLITUDE = 0.01  # the largest |input| the folded tanh sees on the training texts: linear to within 3.3e-5
FOLD_TOLERANCE = 1e-3  # the largest difference of logits the fold may make on the training texts


def few_shot_reason(task: Any, two_texts: bool = False) -> str:
    """Why few-shot training cannot train this task, or "" when it can."""
    modality = get_modality(task.modality)
    if not modality.few_shot:
        return f"few-shot training (SetFit) takes texts; this dataset's inputs are {task.modality}s"
    if not task.few_shot:
        return f"few-shot training (SetFit) fits a classifier; {task.problem_type} has no few-shot head"
    if two_texts:
        return "few-shot training (SetFit) takes one text per row; this dataset has text pairs"
    return ""


def names_usable(label_names: Sequence[str]) -> bool:
    """Whether class names say something a sentence could: every name has two letters or more and none is a code
    (``LABEL_0``, ``class 3``, ``7``). Codes would only teach the body that "This sentence is 3" is class 3."""
    return bool(label_names) and all(sum(c.isalpha() for c in str(n)) >= 2 and not CODE_NAME.fullmatch(str(n).strip())
                                     for n in label_names)


def names_to_learn(label_names: Sequence[str], wanted: bool = True) -> list[str] | None:
    """The class names to learn from (:func:`fit_few_shot`'s ``label_names``): the names when ``wanted`` and
    :func:`names_usable`, else None."""
    return [str(n) for n in label_names] if wanted and names_usable(label_names) else None


@dataclass
class FewShotModel:
    """A SetFit model whose body pools the first token: its embeddings, scores and the saved classifier."""

    setfit: Any  # setfit.SetFitModel
    task: Any
    n_labels: int

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The body's first-token embeddings, [n, hidden] (not normalised: the head reads them as they are)."""
        return np.asarray(self.setfit.model_body.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                                        show_progress_bar=False), dtype=np.float32)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's logits for embeddings, [n, labels]: what the saved classifier computes."""
        weight, bias = self.task.few_shot_weights(self.setfit.model_head, self.n_labels)
        return embeddings @ weight.T + bias

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """The task's scores (probabilities) for texts."""
        return self.task.scores(self.logits(self.embed(texts)))


def torch_device_usable() -> bool:
    """True when bmcore trains on an accelerator (``BMCORE_DEVICE``/detection): sentence-transformers may pick it."""
    return detect_device().kind != "cpu"


def build_body(mref: Any, max_seq_length: int) -> Any:
    """A SentenceTransformer on the model's encoder with first-token pooling, loaded from safetensors only."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    encoder = Transformer(mref.location, max_seq_length=max_seq_length,
                          model_kwargs={"use_safetensors": True, "trust_remote_code": False},
                          config_kwargs={"trust_remote_code": False}, processor_kwargs={"trust_remote_code": False})
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="cls")
    return SentenceTransformer(modules=[encoder, pooling], device=None if torch_device_usable() else "cpu")


def pair_steps(n_examples: int, max_steps: int | None) -> int:
    """Steps of :data:`BATCH_SIZE` pairs for ``n_examples``: SetFit's oversampling (every negative pair, positives drawn
    to match) when that is fewer than the cap, else the cap (``max_steps``, default :data:`MAX_STEPS`)."""
    pairs = n_examples * (n_examples - 1)  # an upper bound of oversampling's count: twice the pairs
    return max(1, min(pairs // BATCH_SIZE, max_steps or MAX_STEPS))


def fit_few_shot(mref: Any, task: Any, texts: Sequence[str], targets: Sequence[Any], n_labels: int, *, seed: int = 0,
                 max_seq_length: int = 128, max_steps: int | None = None, learning_rate: float = BODY_LEARNING_RATE,
                 callbacks: Sequence[Any] = (), output_dir: str | Path | None = None,
                 report_to: Sequence[str] = (), label_names: Sequence[str] | None = None) -> FewShotModel:
    """Train SetFit on ``texts`` with ``targets`` (class ids, or 0/1 rows for multi-label) and return the model.

    ``label_names``: the class names, in id order, to learn from as well (:data:`NAME_EXAMPLES` templated examples
    each) when :func:`names_usable`; None: the texts alone. ``report_to``: the trackers SetFit's body trainer reports
    to through transformers' integrations (none by default).
    """
    import tempfile

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments, get_templated_dataset
    from transformers import set_seed

    set_seed(seed)
    body = build_body(mref, max_seq_length)
    strategy, head = task.few_shot_head()
    model = SetFitModel(model_body=body, model_head=head, multi_target_strategy=strategy, normalize_embeddings=False)
    labels = [int(t) if np.ndim(t) == 0 else [int(v) for v in t] for t in targets]
    if np.ndim(labels[0]) == 0 and len(set(labels)) < 2:
        raise BmcoreError("few-shot training needs examples of at least two classes")
    data = Dataset.from_dict({"text": list(texts), "label": labels})
    if label_names is not None and names_usable(label_names):
        data = get_templated_dataset(data, candidate_labels=[str(n) for n in label_names], template=NAME_TEMPLATE,
                                     sample_size=NAME_EXAMPLES, multi_label=np.ndim(labels[0]) > 0)
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:
        args = TrainingArguments(output_dir=str(output_dir or scratch), batch_size=BATCH_SIZE, num_epochs=1,
                                 max_steps=pair_steps(len(data), max_steps), body_learning_rate=learning_rate, seed=seed,
                                 max_length=max_seq_length, show_progress_bar=False, report_to=list(report_to) or "none",
                                 save_strategy="no", logging_steps=10)
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=list(callbacks))
        quiet(trainer.st_trainer)
        trainer.train()
    return FewShotModel(model, task, n_labels)


def quiet(trainer: Any) -> None:
    """No progress bars or printed dicts from SetFit's body trainer: bmcore's callback logs progress."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def fold_into(classifier: Any, few: FewShotModel, texts: Sequence[str]) -> float:
    """Copy the trained body into ``classifier`` (an AutoModelForSequenceClassification of the same base) and fold the
    head into its classification head; returns the largest difference of logits on ``texts`` (checked)."""
    import torch

    body = few.setfit.model_body[0].auto_model
    missing, unexpected = classifier.base_model.load_state_dict(body.state_dict(), strict=False)
    if unexpected or any("pooler" not in name for name in missing):
        raise BmcoreError("few-shot training could not copy the trained body into the classifier "
                          f"({len(missing)} missing, {len(unexpected)} unexpected weights)")
    dense, out = head_layers(classifier)
    embeddings = few.embed(texts)
    scale = TANH_AMPLITUDE / max(float(np.abs(embeddings).max()), 1e-6)
    weight, bias = few.task.few_shot_weights(few.setfit.model_head, few.n_labels)
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.weight.shape[0]) * scale)
        dense.bias.zero_()
        out.weight.copy_(torch.as_tensor(weight / scale, dtype=out.weight.dtype))
        out.bias.copy_(torch.as_tensor(bias, dtype=out.bias.dtype))
    return check_fold(classifier, few, texts, embeddings)


def head_layers(classifier: Any) -> tuple[Any, Any]:
    """The dense layer (before tanh) and the output layer of a classifier that reads the first token: BERT's pooler and
    classifier, or the ``dense`` and ``out_proj`` of RoBERTa's, XLM-R's and MPNet's classification head."""
    head = getattr(classifier, "classifier", None)
    pooler = getattr(classifier.base_model, "pooler", None)
    if pooler is not None and hasattr(pooler, "dense") and hasattr(head, "weight"):
        return pooler.dense, head
    if hasattr(head, "dense") and hasattr(head, "out_proj"):
        return head.dense, head.out_proj
    raise BmcoreError(f"few-shot training saves a classifier whose head reads the first token through tanh (BERT, "
                      f"MiniLM, RoBERTa, MPNet); {classifier.config.model_type} has another head")


def check_fold(classifier: Any, few: FewShotModel, texts: Sequence[str], embeddings: np.ndarray) -> float:
    """The largest difference between the classifier's logits and the head's on ``texts``; a fold that changed the
    model's outputs (another activation than tanh, another pooling) is refused."""
    import torch

    tokenizer = few.setfit.model_body[0].tokenizer
    classifier.eval()
    with torch.no_grad():
        batch = tokenizer(list(texts[:64]), padding=True, truncation=True,
                          max_length=few.setfit.model_body.max_seq_length, return_tensors="pt")
        got = classifier(**batch).logits.float().numpy()
    want = few.logits(embeddings[:64])
    diff = float(np.abs(got - want).max())
    if not np.isfinite(diff) or diff > FOLD_TOLERANCE * max(1.0, float(np.abs(want).max())):
        raise BmcoreError(f"few-shot training could not fold the head into {classifier.config.model_type}'s "
                          f"classification head (logits differ by {diff:.3g}); train it without few-shot")
    return diff


def setfit_bridge() -> Any:
    """A callback for SetFit's body trainer, placed before bmcore's: it reports SetFit's ``embedding_loss`` as the
    ``loss`` bmcore's callback logs (the Train page's curve), and keeps checkpoints from being saved (bmcore's callback
    asks for one on cancel: a fine-tune resumes from it; a few-shot run starts again)."""
    from transformers import TrainerCallback

    class SetFitBridge(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs is not None and "loss" not in logs and "embedding_loss" in logs:
                logs["loss"] = logs["embedding_loss"]

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            control.should_save = False
            return control

    return SetFitBridge()
