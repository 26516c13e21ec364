"""The model card: ``model/README.md`` of a run, Markdown with Hugging Face YAML metadata.

It holds the data (dataset, classes, split sizes), the hyperparameters from ``config.json`` and the test metrics
against the baseline, then how to use the model. It is also written when a training run completes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import runs
from ..data import DATASET_META, dataset_dir
from ..display import md, md_code
from ..errors import BmcoreError
from ..evaluate import METRICS_FILE
from ..metrics import check_scores
from ..models import resolve_model
from ..tasks import MULTI_LABEL, get_task
from .run import CARD_FILE, is_image_folder, read_or_empty

# The Hub ids of bundled models, for the card's base_model (a local folder has none).
BUILTIN_HUB_IDS = {"builtin:minilm": "sentence-transformers/all-MiniLM-L6-v2"}
PIXEL_BASELINE = "logistic regression on 16x16 grayscale pixels"
SINGLE_LABEL_RESULTS = (("accuracy", "accuracy", "Test accuracy", None),
                        ("f1", "f1_macro", "Test macro F1", {"average": "macro"}))
MULTI_LABEL_RESULTS = (("f1", "f1_micro", "Test micro F1", {"average": "micro"}),
                       ("f1", "f1_macro", "Test macro F1", {"average": "macro"}),
                       ("accuracy", "subset_accuracy", "Test subset accuracy (whole label set right)", None))
MULTI_LABEL_COLUMNS = (("micro F1", "f1_micro"), ("macro F1", "f1_macro"), ("samples F1", "f1_samples"),
                       ("subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss"))


def base_model_id(model_name_or_path: str) -> str | None:
    """The Hub id of the model a run started from, when it has one (a builtin or a Hub id; not a local folder)."""
    ref = str(model_name_or_path or "").strip()
    if ref in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[ref]
    try:
        mref = resolve_model(ref)
    except BmcoreError:
        return None
    return mref.hub_id if mref.kind == "hub" else None


def _test_metrics(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, baseline) test metrics: the full evaluation where it exists, else ``eval.json``'s summary."""
    full = check_scores(read_or_empty(run_dir / runs.EVALUATION_DIR / "test" / METRICS_FILE),
                        f"the test evaluation of {run_dir.name}")
    if full.get("accuracy") is not None:
        return full, full.get("baseline") or {}
    summary = check_scores(read_or_empty(run_dir / runs.EVAL_FILE), f"eval.json in {run_dir.name}")
    test = summary.get("test") or {}
    base = summary.get("baseline") or {}
    if test.get("problem_type") == MULTI_LABEL:
        return test, {}  # eval.json keeps the multi-label baseline's accuracy and macro F1 only: not comparable here
    return ({"accuracy": test.get("accuracy"), "f1_macro": test.get("macro_f1"), "n": test.get("n")},
            {"accuracy": base.get("accuracy"), "f1_macro": base.get("macro_f1")})


def _num(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


@dataclass
class _Facts:
    """What the card's sections are written from, read once from the run folder and its dataset."""

    run_dir: Path
    config: dict[str, Any]
    meta: dict[str, Any]  # model/bmcore.json
    labels: list[str]
    dataset: str
    base_ref: str
    base_id: str | None
    base_shown: str  # the base model as the card names it
    model: dict[str, Any]  # test metrics
    baseline: dict[str, Any]
    multi: bool
    image: bool
    data_meta: dict[str, Any]  # the prepared dataset's dataset.json; {} for a raw source

    @property
    def kind(self) -> str:
        return "image" if self.image else "text"


def _read_facts(run_dir: Path) -> _Facts:
    """The run's configuration, model metadata, labels, base model, test metrics and dataset metadata."""
    config = read_or_empty(run_dir / runs.CONFIG_FILE)
    meta = read_or_empty(run_dir / runs.MODEL_DIR / "bmcore.json")
    model_config = read_or_empty(run_dir / runs.MODEL_DIR / "config.json")
    id2label = model_config.get("id2label") or {}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)] or list(meta.get("label_names") or [])
    dataset = str(meta.get("dataset") or config.get("dataset") or "unknown")
    base_ref = str(config.get("model_name_or_path") or meta.get("base_model") or "")
    base_id = base_model_id(base_ref)
    # A local base model is named by its folder only: the card may be published, a home path should not be.
    base_shown = base_ref if base_id or not base_ref or base_ref.startswith("builtin:") else f"{Path(base_ref).name} (a local folder)"
    model, baseline = _test_metrics(run_dir)
    multi = (meta.get("problem_type") or model_config.get("problem_type")) == MULTI_LABEL
    image = meta.get("modality") == "image" or is_image_folder(run_dir / runs.MODEL_DIR)
    try:
        data_meta = read_or_empty(dataset_dir(dataset) / DATASET_META)
    except BmcoreError:  # a raw source rather than a prepared dataset's name
        data_meta = {}
    return _Facts(run_dir, config, meta, labels, dataset, base_ref, base_id, base_shown, model, baseline, multi, image,
                  data_meta)


def _card_data(f: _Facts) -> Any:
    """The card's YAML metadata: library, pipeline tag, base model and the test results as Hub eval results."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCardData

    results = []
    for metric, key, name, args in (MULTI_LABEL_RESULTS if f.multi else SINGLE_LABEL_RESULTS):
        if f.model.get(key) is not None:
            results.append(HubEvalResult(task_type=f"{f.kind}-classification", task_name=f"{f.kind.title()} Classification",
                                         dataset_type=f.dataset, dataset_name=f.dataset, dataset_split="test",
                                         metric_type=metric, metric_name=name, metric_value=round(float(f.model[key]), 4),
                                         metric_args=args))
    return ModelCardData(library_name="transformers", pipeline_tag=f"{f.kind}-classification", base_model=f.base_id,
                         metrics=["accuracy", "f1"], tags=[f"{f.kind}-classification", "bmcore"],
                         model_name=f.run_dir.name, eval_results=results or None)


def _intro(f: _Facts) -> list[str]:
    """The title and one sentence: what the model tells apart, what it was fine-tuned from and on what."""
    # Every name from data (labels, columns, files, runs) is shown as text: md() and md_code() make it inert.
    names = ", ".join(md_code(n) for n in f.labels)
    what = (f"A multi-label text classifier with {len(f.labels)} labels ({names})"
            if f.multi else f"A{'n' if f.image else ''} {f.kind} classifier with {len(f.labels)} classes ({names})")
    base = f"[{f.base_id}](https://huggingface.co/{f.base_id})" if f.base_id else md_code(f.base_shown)
    return [f"# {md(f.run_dir.name)}", "",
            f"{what}, fine-tuned with bmcore studio from {base} on the dataset {md_code(f.dataset)}.", "",
            "## Results on the test split", ""]


def _multi_label_results(model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                         labels: list[str]) -> list[str]:
    """The card's results for a multi-label model: the headline metrics against the baseline, and per label
    its threshold (tuned on validation, saved in ``bmcore.json``) with precision, recall and F1."""
    if model.get("f1_micro") is None:
        return ["No test metrics were saved for this run.", ""]
    n = model.get("n")
    lines = [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
             "| model | " + " | ".join(c for c, _ in MULTI_LABEL_COLUMNS) + " |",
             "| --- |" + " ---: |" * len(MULTI_LABEL_COLUMNS),
             "| this model | " + " | ".join(_num(model.get(k)) for _, k in MULTI_LABEL_COLUMNS) + " |"]
    if baseline.get("f1_micro") is not None:
        lines += ["| baseline: TF-IDF + one-vs-rest logistic regression (threshold 0.5) | "
                  + " | ".join(_num(baseline.get(k)) for _, k in MULTI_LABEL_COLUMNS) + " |", "",
                  "The baseline is trained on the same train split and scored on the same test examples."]
    lines += ["", "Subset accuracy counts a text as right only when its whole label set is; the Hamming loss is the "
              "share of wrong yes/no label decisions (lower is better).", ""]
    thresholds = get_task(MULTI_LABEL).thresholds(labels, meta)
    fitted = meta.get("thresholds_fitted_on")
    lines += ["### Thresholds", "",
              (f"Each label has its own decision threshold, tuned on the {md(fitted)} split (the one that gives the label "
               "its best F1) and saved in `bmcore.json` under `thresholds`." if meta.get("thresholds") else
               "No thresholds were tuned (there was no validation split): every label uses 0.5."), ""]
    flat = model.get("flat_threshold") or {}
    if flat.get("f1_micro") is not None:
        lines += [f"With one flat threshold of {flat.get('threshold')} instead: micro F1 {_num(flat.get('f1_micro'))}, "
                  f"macro F1 {_num(flat.get('f1_macro'))}.", ""]
    per_class = model.get("per_class") or {}
    lines += ["| label | threshold | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, t in zip(labels, thresholds, strict=True):
        v = per_class.get(name) or {}
        lines.append(f"| {md(name)} | {t:.2f} | {_num(v.get('precision'))} | {_num(v.get('recall'))} | "
                     f"{_num(v.get('f1'))} | {v.get('support', '-')} |")
    return lines + [""]


def _single_label_results(model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                          image: bool) -> list[str]:
    """The card's results for a single-label model: accuracy and macro F1 against the baseline, each class's
    precision, recall and F1, and the calibration error before and after temperature scaling."""
    if model.get("accuracy") is None:
        return ["No test metrics were saved for this run.", ""]
    n = model.get("n")
    lines = [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
             "| model | accuracy | macro F1 |", "| --- | ---: | ---: |",
             f"| this model | {_num(model.get('accuracy'))} | {_num(model.get('f1_macro'))} |"]
    if baseline.get("accuracy") is not None:
        lines.append(f"| baseline: {PIXEL_BASELINE if image else 'TF-IDF + logistic regression'} | "
                     f"{_num(baseline.get('accuracy'))} | "
                     f"{_num(baseline.get('f1_macro'))} |")
    lines.append("")
    if baseline.get("accuracy") is None:
        lines += [f"No {'pixel' if image else 'TF-IDF'} baseline was trained (the dataset had no train split).", ""]
    else:
        lines += ["The baseline is trained on the same train split and scored on the same test examples.", ""]
    per_class = model.get("per_class") or {}
    if per_class:
        lines += ["| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {md(name)} | {_num(v.get('precision'))} | {_num(v.get('recall'))} | {_num(v.get('f1'))} | "
                  f"{v.get('support', '-')} |" for name, v in per_class.items()]
        lines.append("")
    if model.get("ece") is not None:
        t = model.get("temperature")
        why = (model.get("calibration") or {}).get("reason") or meta.get("temperature_reason")
        lines += [f"Expected calibration error {_num(model.get('ece'))}"
                  + (f", {_num(model.get('ece_calibrated'))} after temperature scaling (T = {t:.3f}, fitted on the "
                     "validation split and saved in `bmcore.json`)" if t else "") + "."
                  + (f" No temperature was saved: {md(why)}." if not t and isinstance(why, str) and why else ""), ""]
    return lines


def _data_section(f: _Facts) -> list[str]:
    """The Data section: dataset and source file, columns, split sizes, classes; for images their size and
    augmentation."""
    source = str(f.data_meta.get("source") or "")
    source = Path(source).name if os.sep in source else source  # a file's name, not its path on this machine
    lines = ["## Data", "", f"- Dataset: {md_code(f.dataset)}" + (f", from {md_code(source)}" if source else "")]
    if f.data_meta.get("text_columns"):
        lines.append(f"- Text column(s): {', '.join(md_code(c) for c in f.data_meta['text_columns'])}; "
                     f"label column: {md_code(f.data_meta.get('label_column'))}")
    splits = f.data_meta.get("splits") or {}
    if splits:
        lines.append("- Splits: " + ", ".join(f"{int(v):,} {k}" for k, v in splits.items()))
    lines += [f"- {'Labels' if f.multi else 'Classes'}: {', '.join(md_code(n) for n in f.labels)}"]
    if f.image:
        size = f.meta.get("image_size") or f.config.get("image_size")
        lines += [f"- Image size: {f'{int(size)}x{int(size)} pixels' if size else 'the model default'} (every image is "
                  "resized to it and normalised by the saved image processor, `preprocessor_config.json`)",
                  "- Augmentation of the training split: " + ("random resized crop and horizontal flip"
                                                               if f.config.get("augment", True) else "none")
                  + "; evaluation never augments"]
    return lines + [""]


def _hyperparameters_section(f: _Facts) -> list[str]:
    """The Training hyperparameters table: ``config.json``'s settings, steps and seconds, precision, schedule."""
    lines = ["## Training hyperparameters", "", "| setting | value |", "| --- | --- |"]
    shown = f.config | ({"model_name_or_path": f.base_shown} if f.base_ref else {})
    lines += [f"| `{k}` | {md_code(json.dumps(v), in_table=True)} |" for k, v in shown.items() if v is not None and k != "dataset"]
    last = next((r for r in reversed(runs.read_metrics(f.run_dir)) if r.get("elapsed_s") is not None), None)
    if last:
        lines.append(f"| training | {last.get('step', '-')} steps in {float(last['elapsed_s']):.0f} s |")
    if f.meta.get("precision"):
        lines.append(f"| precision used | `{f.meta['precision']}` |")
    status = read_or_empty(f.run_dir / runs.STATUS_FILE)
    if isinstance(status.get("schedule"), str):  # the small-data rule's epochs and batches, where the table says unset
        lines.append(f"| epochs and batches | {md_code(status['schedule'], in_table=True)} |")
    return lines + [""]


def _text_usage(f: _Facts) -> list[str]:
    """A text classifier's card from "Use it" on: transformers' pipeline (with the thresholds for multi-label), the
    CLI, limits."""
    msl = f.meta.get("max_seq_length") or f.config.get("max_seq_length")
    limit = f"truncation=True{f', max_length={msl}' if msl else ''}"
    call = f'classifier("your text here", {limit})'
    if f.multi:
        lines = ["## Use it", "", "Every label gets its own sigmoid score; a label applies when its score reaches that "
                 "label's threshold, saved in `bmcore.json`.", "", "```python", "import json", "",
                 "from transformers import pipeline", "",
                 'classifier = pipeline("text-classification", model="path/to/this/folder", top_k=None)  # every label',
                 'thresholds = json.load(open("path/to/this/folder/bmcore.json"))["thresholds"]',
                 f'scores = classifier(["your text here"], {limit})[0]  # a list in: one list of scores per text',
                 'labels = [s["label"] for s in scores if s["score"] >= thresholds[s["label"]]]', "```", ""]
    else:
        lines = ["## Use it", "", "```python", "from transformers import pipeline", "",
                 'classifier = pipeline("text-classification", model="path/to/this/folder")', call, "```", ""]
    return lines + [
        "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder \"your text here\"`"
        + (" (it applies the thresholds)." if f.multi else "."), "",
        "## Limitations", "",
        f"It only knows the {'labels' if f.multi else 'classes'} above and the kind of text in {md_code(f.dataset)}; "
        f"texts longer than {msl or 'max_seq_length'} tokens are cut. "
        + ("Check each label's F1 and the misclassified examples before relying on it." if f.multi else
           "Check the confusion matrix and the misclassified examples before relying on it."), ""]


def _image_usage(f: _Facts) -> list[str]:
    """An image classifier's card from "Use it" on: transformers' image-classification pipeline, the CLI, limits."""
    size = f.meta.get("image_size") or f.config.get("image_size")
    return ["## Use it", "", "```python", "from transformers import pipeline", "",
            'classifier = pipeline("image-classification", model="path/to/this/folder")',
            'classifier("image.png", top_k=None)  # every class with its probability', "```", "",
            "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder image.png` "
            "(`--explain` also writes a heat map of what the model looked at).", "",
            "## Limitations", "",
            f"It only knows the classes above and the kind of images in {md_code(f.dataset)}; every image is resized to "
            f"{f'{int(size)}x{int(size)}' if size else 'the model size'} pixels first, so fine detail is lost. Check "
            "the confusion matrix and the misclassified images before relying on it.", ""]


def model_card(run_dir: str | Path) -> str:
    """The model card of a run as Markdown with Hugging Face YAML metadata (``README.md`` of its model).

    Holds the data (dataset, classes, split sizes), the hyperparameters from ``config.json``
    and the test metrics against the TF-IDF baseline; a multi-label model's card also gives each label's tuned
    threshold and how to apply them with ``transformers.pipeline(..., top_k=None)``. Works on any run with a saved model and
    ``config.json``; sections whose files are missing say so.
    """
    from huggingface_hub import ModelCard

    f = _read_facts(Path(run_dir))
    lines = _intro(f)
    if f.multi:
        lines += _multi_label_results(f.model, f.baseline, f.meta, f.labels)
    else:
        lines += _single_label_results(f.model, f.baseline, f.meta, f.image)
    lines += _data_section(f) + _hyperparameters_section(f) + (_image_usage(f) if f.image else _text_usage(f))
    return str(ModelCard.from_template(_card_data(f), template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines)))


def write_model_card(run_dir: str | Path) -> Path:
    """Write (or refresh) ``model/README.md`` of a run; an unchanged card is not rewritten."""
    path = Path(run_dir) / runs.MODEL_DIR / CARD_FILE
    text = model_card(run_dir)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path  # unchanged: leave the folder's mtime alone (the Playground caches models by it)
    except OSError:
        pass
    tmp = path.with_name(f".{CARD_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
