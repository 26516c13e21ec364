"""Ship a finished run: a zip of its model, a model card, ONNX with a parity check, and a push to the Hub.

Everything works on a completed run folder (see :mod:`bmcore.runs`) and writes under it:

* ``model/README.md`` - the model card (Hugging Face YAML metadata, data, hyperparameters,
  test metrics next to the TF-IDF baseline); also written when a training run completes;
* ``export/<run>-model.zip`` - the ``model/`` folder, loadable by ``transformers.pipeline``
  once unzipped;
* ``export/onnx/`` - ``model.onnx`` (fp32, dynamic batch and sequence axes) with the tokenizer
  and config beside it, and ``parity.json``: ONNX Runtime's logits against PyTorch's on the
  test split.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import runs
from .display import md, md_code
from .errors import BmcoreError
from .metrics import check_scores
from .tasks import MULTI_LABEL, get_task

FORMATS = ("zip", "onnx", "card", "hub")
EXPORT_DIR = "export"
ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
PARITY_FILE = "parity.json"
CARD_FILE = "README.md"
ONNX_OPSET = 17
PARITY_ATOL = 1e-3  # max |logit difference| accepted between ONNX Runtime and PyTorch, both fp32
PARITY_MAX_EXAMPLES = 500  # test examples compared by default (the first ones, in split order)
# The Hub ids of bundled models, for the card's base_model (a local folder has none).
BUILTIN_HUB_IDS = {"builtin:minilm": "sentence-transformers/all-MiniLM-L6-v2"}
# Left out of the zip and the Hub upload: the Trainer's pickled TrainingArguments (the card lists the settings,
# and the Hub flags pickles).
SKIPPED = ("training_args.bin",)


# --- the run -------------------------------------------------------------------------------


def finished_run(run: str | Path) -> Path:
    """The folder of a completed run with a saved model, or a one-line :class:`BmcoreError` saying why not."""
    path = Path(run).expanduser()
    if not path.exists() and os.sep not in str(run):
        path = runs.find_run(str(run))  # a run name in the workspace
    if not path.is_dir():
        raise BmcoreError(f"run folder {run} does not exist; give a run folder such as workspace/runs/<name>")
    if not runs.is_run_dir(path):
        raise BmcoreError(f"{run} is not a run folder (no status.json or config.json)")
    state = runs.read_status(path).get("state")
    if state != runs.COMPLETED:
        raise BmcoreError(f"run {path.name} is {state or 'not started'}, not completed; export a finished run")
    if not (path / runs.MODEL_DIR / "config.json").is_file():
        raise BmcoreError(f"run {path.name} has no saved model in {runs.MODEL_DIR}/; train it again")
    return path.resolve()


def export_dir(run_dir: str | Path) -> Path:
    """Where a run's exports go: ``<run>/export``."""
    return Path(run_dir) / EXPORT_DIR


def _model_mtime(model_dir: Path) -> float:
    # The card is derived from the model, so writing it does not make earlier exports stale.
    return max((p.stat().st_mtime for p in model_dir.iterdir() if p.is_file() and p.name != CARD_FILE), default=0.0)


def _fresh(path: Path, model_dir: Path) -> bool:
    return path.is_file() and path.stat().st_mtime >= _model_mtime(model_dir)


# --- model card ----------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def base_model_id(model_name_or_path: str) -> str | None:
    """The Hub id of the model a run started from, when it has one (a builtin or a Hub id; not a local folder)."""
    ref = str(model_name_or_path or "").strip()
    if ref in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[ref]
    from .models import resolve_model

    try:
        mref = resolve_model(ref)
    except BmcoreError:
        return None
    return mref.hub_id if mref.kind == "hub" else None


def _test_metrics(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, baseline) test metrics: the full evaluation where it exists, else ``eval.json``'s summary."""
    from .evaluate import METRICS_FILE

    full = check_scores(_read(run_dir / runs.EVALUATION_DIR / "test" / METRICS_FILE), f"the test evaluation of {run_dir.name}")
    if full.get("accuracy") is not None:
        return full, full.get("baseline") or {}
    summary = check_scores(_read(run_dir / runs.EVAL_FILE), f"eval.json in {run_dir.name}")
    test = summary.get("test") or {}
    base = summary.get("baseline") or {}
    if test.get("problem_type") == MULTI_LABEL:
        return test, {}  # eval.json keeps the multi-label baseline's accuracy and macro F1 only: not comparable here
    return ({"accuracy": test.get("accuracy"), "f1_macro": test.get("macro_f1"), "n": test.get("n")},
            {"accuracy": base.get("accuracy"), "f1_macro": base.get("macro_f1")})


def _num(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


SINGLE_LABEL_RESULTS = (("accuracy", "accuracy", "Test accuracy", None),
                        ("f1", "f1_macro", "Test macro F1", {"average": "macro"}))
MULTI_LABEL_RESULTS = (("f1", "f1_micro", "Test micro F1", {"average": "micro"}),
                       ("f1", "f1_macro", "Test macro F1", {"average": "macro"}),
                       ("accuracy", "subset_accuracy", "Test subset accuracy (whole label set right)", None))
MULTI_LABEL_COLUMNS = (("micro F1", "f1_micro"), ("macro F1", "f1_macro"), ("samples F1", "f1_samples"),
                       ("subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss"))


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


def model_card(run_dir: str | Path) -> str:
    """The model card of a run as Markdown with Hugging Face YAML metadata (``README.md`` of its model).

    Holds the data (dataset, classes, split sizes), the hyperparameters from ``config.json``
    and the test metrics against the TF-IDF baseline; a multi-label model's card also gives each label's tuned
    threshold and how to apply them with ``transformers.pipeline(..., top_k=None)``. Works on any run with a saved model and
    ``config.json``; sections whose files are missing say so.
    """
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    run_dir = Path(run_dir)
    config = _read(run_dir / runs.CONFIG_FILE)
    meta = _read(run_dir / runs.MODEL_DIR / "bmcore.json")
    model_config = _read(run_dir / runs.MODEL_DIR / "config.json")
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
    kind = "image" if image else "text"

    from .data import DATASET_META, dataset_dir

    try:
        data_meta = _read(dataset_dir(dataset) / DATASET_META)
    except BmcoreError:  # a raw source rather than a prepared dataset's name
        data_meta = {}
    splits = data_meta.get("splits") or {}

    results = []
    for metric, key, name, args in (MULTI_LABEL_RESULTS if multi else SINGLE_LABEL_RESULTS):
        if model.get(key) is not None:
            results.append(HubEvalResult(task_type=f"{kind}-classification", task_name=f"{kind.title()} Classification",
                                         dataset_type=dataset, dataset_name=dataset, dataset_split="test",
                                         metric_type=metric, metric_name=name, metric_value=round(float(model[key]), 4),
                                         metric_args=args))
    data = ModelCardData(library_name="transformers", pipeline_tag=f"{kind}-classification", base_model=base_id,
                         metrics=["accuracy", "f1"], tags=[f"{kind}-classification", "bmcore"],
                         model_name=run_dir.name, eval_results=results or None)

    # Every name from data (labels, columns, files, runs) is shown as text: md() and md_code() make it inert.
    what = (f"A multi-label text classifier with {len(labels)} labels ({', '.join(md_code(n) for n in labels)})"
            if multi else f"A{'n' if image else ''} {kind} classifier with {len(labels)} classes ({', '.join(md_code(n) for n in labels)})")
    lines = [f"# {md(run_dir.name)}", "",
             f"{what}, fine-tuned with "
             f"bmcore studio from {f'[{base_id}](https://huggingface.co/{base_id})' if base_id else md_code(base_shown)} "
             f"on the dataset {md_code(dataset)}.", "",
             "## Results on the test split", ""]
    if multi:
        lines += _multi_label_results(model, baseline, meta, labels)
    elif model.get("accuracy") is not None:
        n = model.get("n")
        lines += [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
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
    else:
        lines += ["No test metrics were saved for this run.", ""]

    source = str(data_meta.get("source") or "")
    source = Path(source).name if os.sep in source else source  # a file's name, not its path on this machine
    lines += ["## Data", "", f"- Dataset: {md_code(dataset)}" + (f", from {md_code(source)}" if source else "")]
    if data_meta.get("text_columns"):
        lines.append(f"- Text column(s): {', '.join(md_code(c) for c in data_meta['text_columns'])}; "
                     f"label column: {md_code(data_meta.get('label_column'))}")
    if splits:
        lines.append("- Splits: " + ", ".join(f"{int(v):,} {k}" for k, v in splits.items()))
    lines += [f"- {'Labels' if multi else 'Classes'}: {', '.join(md_code(n) for n in labels)}"]
    if image:
        size = meta.get("image_size") or config.get("image_size")
        lines += [f"- Image size: {f'{int(size)}x{int(size)} pixels' if size else 'the model default'} (every image is "
                  "resized to it and normalised by the saved image processor, `preprocessor_config.json`)",
                  "- Augmentation of the training split: " + ("random resized crop and horizontal flip"
                                                               if config.get("augment", True) else "none")
                  + "; evaluation never augments"]
    lines.append("")

    lines += ["## Training hyperparameters", "", "| setting | value |", "| --- | --- |"]
    shown = config | ({"model_name_or_path": base_shown} if base_ref else {})
    lines += [f"| `{k}` | {md_code(json.dumps(v), in_table=True)} |" for k, v in shown.items() if v is not None and k != "dataset"]
    last = next((r for r in reversed(runs.read_metrics(run_dir)) if r.get("elapsed_s") is not None), None)
    if last:
        lines.append(f"| training | {last.get('step', '-')} steps in {float(last['elapsed_s']):.0f} s |")
    if meta.get("precision"):
        lines.append(f"| precision used | `{meta['precision']}` |")
    status = _read(run_dir / runs.STATUS_FILE)
    if isinstance(status.get("schedule"), str):  # the small-data rule's epochs and batches, where the table says unset
        lines.append(f"| epochs and batches | {md_code(status['schedule'], in_table=True)} |")
    lines.append("")

    if image:
        return _image_card_end(data, lines, dataset, meta.get("image_size") or config.get("image_size"))
    msl = meta.get("max_seq_length") or config.get("max_seq_length")
    limit = f"truncation=True{f', max_length={msl}' if msl else ''}"
    call = f'classifier("your text here", {limit})'
    if multi:
        lines += ["## Use it", "", "Every label gets its own sigmoid score; a label applies when its score reaches that "
                  "label's threshold, saved in `bmcore.json`.", "", "```python", "import json", "",
                  "from transformers import pipeline", "",
                  'classifier = pipeline("text-classification", model="path/to/this/folder", top_k=None)  # every label',
                  'thresholds = json.load(open("path/to/this/folder/bmcore.json"))["thresholds"]',
                  f'scores = classifier(["your text here"], {limit})[0]  # a list in: one list of scores per text',
                  'labels = [s["label"] for s in scores if s["score"] >= thresholds[s["label"]]]', "```", ""]
    else:
        lines += ["## Use it", "", "```python", "from transformers import pipeline", "",
                  'classifier = pipeline("text-classification", model="path/to/this/folder")', call, "```", ""]
    lines += ["Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder \"your text here\"`"
              + (" (it applies the thresholds)." if multi else "."), "",
              "## Limitations", "",
              f"It only knows the {'labels' if multi else 'classes'} above and the kind of text in {md_code(dataset)}; "
              f"texts longer than {msl or 'max_seq_length'} tokens are cut. "
              + ("Check each label's F1 and the misclassified examples before relying on it." if multi else
                 "Check the confusion matrix and the misclassified examples before relying on it."), ""]
    return str(ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines)))


PIXEL_BASELINE = "logistic regression on 16x16 grayscale pixels"


def _image_card_end(data: Any, lines: list[str], dataset: str, size: Any) -> str:
    """An image classifier's card from "Use it" on: transformers' image-classification pipeline, the CLI, limits."""
    from huggingface_hub import ModelCard

    lines += ["## Use it", "", "```python", "from transformers import pipeline", "",
              'classifier = pipeline("image-classification", model="path/to/this/folder")',
              'classifier("image.png", top_k=None)  # every class with its probability', "```", "",
              "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder image.png` "
              "(`--explain` also writes a heat map of what the model looked at).", "",
              "## Limitations", "",
              f"It only knows the classes above and the kind of images in {md_code(dataset)}; every image is resized to "
              f"{f'{int(size)}x{int(size)}' if size else 'the model size'} pixels first, so fine detail is lost. Check "
              "the confusion matrix and the misclassified images before relying on it.", ""]
    return str(ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines)))


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


# --- zip ------------------------------------------------------------------------------------


def zip_path(run_dir: str | Path) -> Path:
    """Where the model zip of a run is written."""
    return export_dir(run_dir) / f"{Path(run_dir).name}-model.zip"


def export_zip(run: str | Path, out: str | Path | None = None) -> Path:
    """Zip a finished run's ``model/`` folder (files at the archive's root, card included) and return the zip's path."""
    run_dir = finished_run(run)
    write_model_card(run_dir)
    model_dir = run_dir / runs.MODEL_DIR
    target = Path(out) if out is not None else zip_path(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for p in sorted(model_dir.rglob("*")):
            rel = p.relative_to(model_dir)
            if p.is_file() and p.name not in SKIPPED and not any(part.startswith(".") for part in rel.parts):
                zf.write(p, rel.as_posix())
    os.replace(tmp, target)
    return target


# --- ONNX -----------------------------------------------------------------------------------


@dataclass
class OnnxExport:
    """An ONNX export and its parity check against PyTorch."""

    path: Path
    parity: dict[str, Any]

    @property
    def passed(self) -> bool:
        """True when ONNX Runtime matched PyTorch within tolerance on every compared example."""
        return bool(self.parity.get("passed"))


def onnx_dir(run_dir: str | Path) -> Path:
    """Where a run's ONNX export goes: ``<run>/export/onnx``."""
    return export_dir(run_dir) / ONNX_DIR


def is_image_folder(model_dir: str | Path) -> bool:
    """True when a model folder holds an image classifier (its ``config.json`` names one)."""
    from .modalities import modality_of_ref

    try:
        return modality_of_ref(str(model_dir)).name == "image"
    except (BmcoreError, OSError, ValueError):
        return False


def _load_fp32(model_dir: Path) -> tuple[Any, Any]:
    """(tokenizer or image processor, model) in fp32 with eager attention, which traces to plain ONNX ops."""
    import torch

    if is_image_folder(model_dir):
        from .vision import load_image_classifier, load_image_processor

        model = load_image_classifier(str(model_dir), attn_implementation="eager", dtype=torch.float32).float().eval()
        return load_image_processor(str(model_dir)), model
    from .models import load_classifier, load_tokenizer

    model = load_classifier(str(model_dir), attn_implementation="eager", dtype=torch.float32).float().eval()
    return load_tokenizer(str(model_dir)), model


def _input_names(tokenizer: Any, model: Any) -> list[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    if "pixel_values" in params:
        return ["pixel_values"]
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names and n in params]


def _feeds(tokenizer: Any, names: list[str], texts: list[Any], pairs: list[str] | None, max_seq_length: int) -> dict[str, Any]:
    """ONNX inputs (numpy) for a batch: image bytes through the image processor, or texts through the tokenizer."""
    import numpy as np

    if names == ["pixel_values"]:
        from .tasks.image_classification import decode, pixel_values

        images = [decode(t, f"test image {i + 1}") if isinstance(t, (bytes, bytearray, memoryview)) else t
                  for i, t in enumerate(texts)]
        return {"pixel_values": pixel_values(tokenizer, images).float().numpy()}
    enc = tokenizer(*((texts,) + ((pairs,) if pairs is not None else ())), padding=True, max_length=max_seq_length,
                    truncation="longest_first" if pairs is not None else True, return_tensors="np")
    return {n: enc[n].astype(np.int64) for n in names}


def _test_texts(run_dir: Path, limit: int) -> tuple[list[str], list[str] | None, int]:
    """The first ``limit`` test texts (and pairs) of the run's dataset, and the split's full size."""

    from .data import load_prepared
    from .evaluate import PREDICTIONS_FILE, read_predictions

    config = _read(run_dir / runs.CONFIG_FILE)
    try:
        df = load_prepared(str(config.get("dataset", ""))).splits["test"]
    except (BmcoreError, KeyError, OSError):
        # The prepared dataset is gone; the saved test predictions hold the same texts.
        path = run_dir / runs.EVALUATION_DIR / "test" / PREDICTIONS_FILE
        if not path.is_file():
            raise BmcoreError(f"no test split to check ONNX parity on: dataset {config.get('dataset')!r} is not prepared "
                              "in this workspace and the run has no saved test predictions") from None
        df = read_predictions(path.parent)
    if len(df) == 0:
        raise BmcoreError("the test split is empty; nothing to check ONNX parity on")
    head = df.head(limit)
    if "image" in head:  # an image dataset: the images' bytes (saved test predictions hold no images)
        return head["image"].tolist(), None, len(df)
    pairs = head["text_pair"].fillna("").astype(str).tolist() if "text_pair" in head else None
    return head["text"].fillna("").astype(str).tolist(), pairs, len(df)


def check_onnx_parity(onnx_path: str | Path, model_dir: str | Path, texts: list[Any], pairs: list[str] | None = None, *,
                      max_seq_length: int = 128, batch_size: int = 32, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """Compare ONNX Runtime's logits with PyTorch's (fp32) on ``texts`` (image bytes, for an image model); return
    JSON-ready results.

    ``max_abs_diff`` is the largest |logit difference| over every example and class,
    ``label_agreement`` the share of examples whose decision is the same, as the model's task makes it from
    the logits: the argmax class (single-label), or the whole label set at the thresholds saved in
    ``bmcore.json`` (multi-label); ``passed`` when the difference is within ``atol`` and every decision agrees.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    from .inference import read_model_meta
    from .tasks import task_of_model

    tokenizer, model = _load_fp32(Path(model_dir))
    names = _input_names(tokenizer, model)
    task, meta = task_of_model(model), read_model_meta(model_dir)
    label_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]

    def decide(logits: Any) -> list[Any]:
        return task.decide(task.scores(logits, meta), label_names, meta)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    t_torch = t_ort = 0.0
    diffs, agree = [], 0
    for i in range(0, len(texts), batch_size):
        feed = _feeds(tokenizer, names, texts[i:i + batch_size], pairs[i:i + batch_size] if pairs is not None else None,
                      max_seq_length)
        t0 = time.perf_counter()
        with torch.inference_mode():
            ref = model(**{n: torch.from_numpy(v) for n, v in feed.items()}).logits.numpy()
        t1 = time.perf_counter()
        got = session.run(["logits"], feed)[0]
        t_ort += time.perf_counter() - t1
        t_torch += t1 - t0
        diffs.append(float(np.abs(got - ref).max()))
        agree += sum(a == b for a, b in zip(decide(got), decide(ref), strict=True))
    n = len(texts)
    max_diff = max(diffs, default=0.0)
    return {"n": n, "max_abs_diff": max_diff, "label_agreement": agree / n if n else None, "atol": atol,
            "problem_type": task.problem_type,
            "passed": bool(n and max_diff <= atol and agree == n), "max_seq_length": max_seq_length,
            "torch_seconds": round(t_torch, 3), "onnxruntime_seconds": round(t_ort, 3),
            "onnxruntime": ort.__version__, "torch": torch.__version__}


def export_onnx(run: str | Path, out: str | Path | None = None, *, max_examples: int | None = PARITY_MAX_EXAMPLES,
                atol: float = PARITY_ATOL) -> OnnxExport:
    """Export a finished run's model to ONNX (fp32, opset 17) and check it against PyTorch on the test split.

    Writes ``model.onnx`` with the tokenizer and config beside it (so the folder is
    self-contained) and ``parity.json`` into ``out`` (default ``<run>/export/onnx``).
    ``max_examples`` caps the test examples compared (the first ones; None for all).
    Uses the TorchScript exporter (``dynamo=False``): it needs no extra package and traces
    BERT-family encoders exactly, with dynamic batch and sequence axes.
    """
    import warnings

    import torch

    from .inference import read_model_meta

    if max_examples is not None and max_examples < 1:
        raise BmcoreError("max_examples must be a positive number of test examples")
    run_dir = finished_run(run)
    model_dir = run_dir / runs.MODEL_DIR
    target = Path(out) if out is not None else onnx_dir(run_dir)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer, model = _load_fp32(model_dir)
    names = _input_names(tokenizer, model)

    class Logits(torch.nn.Module):  # named inputs in a fixed order, and the logits alone as output
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    image = names == ["pixel_values"]
    texts, pairs, total = _test_texts(run_dir, max_examples or 10**9)
    if image:  # two test images at the processor's size; only the batch axis varies (the size is fixed by the processor)
        sample = {n: torch.from_numpy(v) for n, v in _feeds(tokenizer, names, texts[:2], None, 0).items()}
        axes = {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}
    else:
        sample = tokenizer(["an example to trace", "a second, longer example to trace the padding"], padding=True,
                           return_tensors="pt")
        axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    tmp = target / f".{ONNX_FILE}.tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings concern shapes that the dynamic axes cover
        # The wrapper must be in eval mode: the exporter restores the module's mode afterwards, and a wrapper in
        # training mode would switch dropout back on in the PyTorch reference.
        try:
            torch.onnx.export(Logits(model).eval(), tuple(sample[n] for n in names), str(tmp), input_names=names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
        except Exception as exc:  # an operator the exporter cannot write: say which architecture, in one line
            tmp.unlink(missing_ok=True)
            reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise BmcoreError(f"{model.config.model_type} models cannot be exported to ONNX here: {reason}") from None
    import onnx

    onnx.checker.check_model(str(tmp))  # a malformed graph fails here, with onnx's reason, not later in a user's runtime
    os.replace(tmp, target / ONNX_FILE)
    tokenizer.save_pretrained(str(target))
    model.config.save_pretrained(str(target))

    meta = read_model_meta(model_dir)
    msl = int(meta.get("max_seq_length") or _read(run_dir / runs.CONFIG_FILE).get("max_seq_length") or 128)
    parity = check_onnx_parity(target / ONNX_FILE, model_dir, texts, pairs, max_seq_length=msl, atol=atol)
    parity.update(split="test", split_size=total, sample="all" if len(texts) == total else f"first {len(texts)}",
                  opset=ONNX_OPSET, file=ONNX_FILE, created=runs.now())
    runs.write_json_atomic(target / PARITY_FILE, parity)
    return OnnxExport(target / ONNX_FILE, parity)


def parity_summary(parity: dict[str, Any]) -> str:
    """One line for a parity result: verdict, max |logit diff|, label agreement and what was compared."""
    verdict = "passed" if parity.get("passed") else "FAILED"
    agree = parity.get("label_agreement")
    n = parity.get("n", 0)
    total = parity.get("split_size", n)
    what = f"all {n:,}" if n == total else f"the first {n:,} of {total:,}"
    return (f"ONNX parity {verdict}: max |logit diff| {parity.get('max_abs_diff', float('nan')):.2e} "
            f"(tolerance {parity.get('atol', PARITY_ATOL):.0e}), label agreement "
            f"{'-' if agree is None else f'{agree:.1%}'} on {what} test examples")


def read_onnx_export(run_dir: str | Path) -> OnnxExport | None:
    """The run's ONNX export and its parity result, or None when there is none or the model is newer."""
    run_dir = Path(run_dir)
    path = onnx_dir(run_dir) / ONNX_FILE
    parity = _read(onnx_dir(run_dir) / PARITY_FILE)
    if not parity or not _fresh(path, run_dir / runs.MODEL_DIR):
        return None
    return OnnxExport(path, parity)


# --- Hugging Face Hub -------------------------------------------------------------------------


def check_hub(repo_id: str, token: str | None = None) -> tuple[str, str]:
    """Check what a push needs without touching the network; return ``(repo_id, token)``.

    Raises a one-line :class:`BmcoreError` when the Hub is offline (``HF_HUB_OFFLINE``), when
    no token is given (``token`` or ``HF_TOKEN``), or when ``repo_id`` is not ``owner/name``.
    """
    from .models import hub_offline

    if hub_offline():
        raise BmcoreError("cannot push to the Hugging Face Hub: offline (HF_HUB_OFFLINE is set); "
                          "download the zip instead, or unset HF_HUB_OFFLINE on a machine with network access")
    token = (token or os.environ.get("HF_TOKEN") or "").strip()
    if not token:
        raise BmcoreError("cannot push to the Hugging Face Hub without a token; give a write token "
                          "(huggingface.co/settings/tokens) in HF_TOKEN or --token")
    repo_id = (repo_id or "").strip()
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise BmcoreError(f"repo id {repo_id!r} should read owner/name, such as your-user/my-classifier")
    return repo_id, token


def push_to_hub(run: str | Path, repo_id: str, token: str | None = None, *, private: bool = True) -> str:
    """Upload a finished run's ``model/`` folder (card included) to a Hub model repo; return its URL.

    :func:`check_hub` runs first, so an offline machine or a missing token fails with one
    line before any network call; an unreachable huggingface.co fails the same way.
    """
    from .models import hub_reachable

    run_dir = finished_run(run)
    repo_id, token = check_hub(repo_id, token)
    if not hub_reachable():
        raise BmcoreError("cannot push to the Hugging Face Hub: huggingface.co is unreachable from here; "
                          "download the zip instead and upload it from a machine with network access")
    from huggingface_hub import create_repo, upload_folder

    write_model_card(run_dir)
    try:
        url = create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        upload_folder(repo_id=repo_id, folder_path=str(run_dir / runs.MODEL_DIR), token=token, repo_type="model",
                      commit_message=f"Upload {run_dir.name} from bmcore studio", ignore_patterns=[".*", *SKIPPED])
    except Exception as exc:  # HTTP errors: a bad token, a repo of someone else's
        raise BmcoreError(f"push to {repo_id} failed: {' '.join(str(exc).split())[:200]}") from exc
    return str(url)


def export_command(run_dir: str | Path, formats: list[str]) -> list[str]:
    """The CLI command behind an export, for the UI to show."""
    cmd = ["python", "-m", "bmcore", "export", str(run_dir)]
    for f in formats:
        cmd += ["--format", f]
    return cmd
