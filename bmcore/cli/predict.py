"""``python -m bmcore predict --model REF [--explain] [--pair TEXT] TEXT...`` or ``--file F``; with an image model,
``python -m bmcore predict --model REF [--explain [--out DIR]] IMAGE...`` (image files: one JSON line each, with
``image``, ``label``, ``scores``; with ``--explain`` the explanation heat map blended over the image is written as a PNG,
``NAME.heatmap.png`` beside each image or in ``--out DIR`` (``NAME-2.heatmap.png``... when names repeat), and the line
adds ``heatmap``, ``method`` and ``target``; ``--method`` picks gradcam, integrated_gradients or rollout, default the
model's own: Grad-CAM for CNNs, attention rollout for ViT-like models, see :mod:`bmcore.explain_images`). The pixels of all the images are capped together
(``BMCORE_MAX_TOTAL_PIXELS``, from their headers), and they are decoded one batch at a time.

Prints one JSON line per input: ``label`` and ``scores``; with ``--explain`` also
``tokens``, ``attributions``, ``attentions`` [layers][heads][tokens][tokens] and ``truncated``.
A multi-label model's lines also hold ``labels`` (the predicted set: each label whose score reaches its
threshold) and ``thresholds`` (label -> threshold, tuned on validation); ``label`` is the top-scoring label,
and ``--explain`` attributes the top-scoring predicted label by default. A regression model's lines hold ``score``
(the predicted number, in the training data's units) instead of ``label`` and ``scores``, and ``--explain`` attributes
the score. The model's task writes each line (:meth:`bmcore.tasks.base.Task.record`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..batch_files import read_batch
from ..errors import BmcoreError
from ..explain import explain
from ..explain_images import OVERLAY_PX, choose_method, explain_image, overlay_png
from ..images.codec import total_pixels
from ..inference import load_for_inference, predict, predict_images
from ..modalities.image import decode
from ..workspace import check_regular


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict (and explain) texts with a model; one JSON line per input")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify or score (image files, for an image model)")
    p.add_argument("--model", required=True, help="builtin:minilm, a run folder or its model/ folder, or a Hub id")
    p.add_argument("--file", help="one text per line (.txt), or a table (CSV, TSV, JSONL...) with a text column")
    p.add_argument("--pair", action="append", metavar="TEXT_PAIR",
                   help="second text for text-pair models: once for all texts, or once per text")
    p.add_argument("--explain", action="store_true", help="add tokens, attention maps and Integrated Gradients attributions; "
                   "for an image model, write each image's heat map (see --method) as a PNG")
    p.add_argument("--method", help="image models with --explain: gradcam (default for CNNs), rollout (default for "
                                    "ViT-like models) or integrated_gradients (any model)")
    p.add_argument("--out", metavar="DIR", help="image models with --explain: the folder for the heat-map PNGs "
                                                "(default: beside each image)")
    p.add_argument("--target", help="class to attribute to (name or id; default the predicted class, or for a "
                                    "multi-label model the top-scoring predicted label)")
    p.add_argument("--n-steps", type=int, default=64, help="Integrated Gradients steps (default 64)")
    p.add_argument("--calibrated", action="store_true", help="add temperature-scaled scores when the model has a temperature")
    p.add_argument("--max-seq-length", type=int, help="tokens; longer inputs are truncated (default: the model's)")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    p.add_argument("--batch-size", type=int, default=64, help="inputs per batch (default 64)")
    p.set_defaults(func=_run)


def read_texts(path: str | Path) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs, for a table with two text columns) from a file.

    A ``.txt`` file or one without a table suffix holds one text per line (blank lines
    are skipped); a table needs a column named like ``text``/``sentence``, or a pair such
    as ``premise``/``hypothesis``, or a single column.
    """
    path = Path(path)
    check_regular(path)  # a FIFO or a device: say what it is, and never open it
    if path.is_dir():
        raise BmcoreError(f"--file {path} is a folder; give a file with one text per line, or a table")
    if not path.is_file():
        raise BmcoreError(f"--file {path} does not exist")
    return read_batch(path.name, path.read_bytes())


def _run(args: argparse.Namespace) -> int:
    texts = list(args.texts)
    pairs: list[str] | None = None
    if args.file:
        file_texts, pairs = read_texts(args.file)
        texts += file_texts
    if not texts:
        raise BmcoreError("no texts to predict; give TEXT arguments or --file")
    if args.pair:
        if pairs is not None:
            raise BmcoreError("--pair cannot be combined with a file that has its own text pairs")
        if len(args.pair) not in (1, len(texts)):
            raise BmcoreError(f"{len(texts)} texts but {len(args.pair)} --pair values; give one for all, or one per text")
        pairs = args.pair * len(texts) if len(args.pair) == 1 else list(args.pair)
    if args.max_seq_length is not None and args.max_seq_length < 2:
        raise BmcoreError("--max-seq-length must be at least 2 tokens")
    if args.method is not None and not args.explain:
        raise BmcoreError("--method chooses how --explain draws an image's heat map; add --explain")
    clf = load_for_inference(args.model, precision=args.precision, max_seq_length=args.max_seq_length)
    if getattr(clf, "processor", None) is not None:
        return _run_images(clf, texts, args)
    if args.method is not None:
        raise BmcoreError("--method is for image models; a text model's --explain gives attention and Integrated Gradients")
    records = predict(clf, texts, pairs, calibrated=args.calibrated, batch_size=args.batch_size)
    for i, (text, rec) in enumerate(zip(texts, records, strict=True)):
        out = {"text": text, **rec}
        if pairs is not None:
            out["text_pair"] = pairs[i]
        if args.explain:
            # Attribute to the label printed (or the asked class), so the two always agree.
            ex = explain(clf, text, pairs[i] if pairs is not None else None,
                         target=args.target if args.target is not None else clf.task.explain_target(rec),
                         n_steps=args.n_steps)
            d = ex.to_dict(decimals=5)
            out.update(tokens=d["tokens"], attributions=d["attributions"], attentions=d["attentions"],
                       truncated=d["truncated"], n_tokens=d["n_tokens"], target=d["target"], delta=d["delta"])
        print(json.dumps(out), flush=True)
    sys.stdout.flush()
    return 0


def check_image_file(path: str | Path) -> Path:
    """An image file's path, after the same checks as --file (a regular file that exists)."""
    path = Path(path)
    check_regular(path)
    if path.is_dir():
        raise BmcoreError(f"{path} is a folder; give image files")
    if not path.is_file():
        raise BmcoreError(f"image file {path} does not exist")
    return path


def read_image(path: str | Path) -> bytes:
    """An image file's bytes, after the same checks as --file (a regular file that exists)."""
    return check_image_file(path).read_bytes()


def _run_images(clf: object, paths: list[str], args: argparse.Namespace) -> int:
    if args.pair:
        raise BmcoreError("--pair is for text-pair models; an image model takes image files only")
    if args.file:
        raise BmcoreError("--file reads texts; give image files as arguments for an image model")

    method = choose_method(clf.model.config, args.method) if args.explain else None  # type: ignore[attr-defined]
    # Every file is checked, and the pixels of all of them counted from their headers, before one is decoded.
    total_pixels("the images given", ((p, lambda p=p: check_image_file(p).open("rb")) for p in paths))
    out_dir = Path(args.out).expanduser() if args.out else None
    if args.explain and out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise BmcoreError(f"--out {out_dir} is a file; give a folder for the heat maps")
        out_dir.mkdir(parents=True, exist_ok=True)
    targets = heatmap_paths(paths, out_dir) if args.explain else []
    # Large images are reduced on load (to the overlay's size, when explaining), and decoded one batch at a time.
    side = max(getattr(clf, "load_side", None) or 0, OVERLAY_PX if args.explain else 0) or None
    step = max(1, args.batch_size)
    for start in range(0, len(paths), step):
        part = paths[start:start + step]
        images = [decode(read_image(p), p, side) for p in part]  # refusals name the file (pixel limit, not an image, ...)
        records = predict_images(clf, images, calibrated=args.calibrated,  # type: ignore[arg-type]
                                 batch_size=args.batch_size)
        for k, (path, img, rec) in enumerate(zip(part, images, records, strict=True)):
            rec.pop("truncated", None)
            line = {"image": path, **rec}
            if args.explain:
                ex = explain_image(clf, img, target=args.target if args.target is not None else rec["label"], method=method)
                target = targets[start + k]
                target.write_bytes(overlay_png(img, ex.heatmap))
                line.update(heatmap=str(target), method=ex.method, target=ex.target)
            print(json.dumps(line), flush=True)
    return 0


def heatmap_path(image: str | Path, out_dir: Path | None = None) -> Path:
    """Where ``--explain`` writes an image's heat map: ``NAME.heatmap.png`` beside the image, or in ``out_dir``."""
    image = Path(image)
    return (out_dir if out_dir is not None else image.parent) / f"{image.stem}.heatmap.png"


def heatmap_paths(images: list[str], out_dir: Path | None = None) -> list[Path]:
    """Each image's heat-map file (:func:`heatmap_path`), one per distinct image: when two images would share a
    name (``a/cat.png`` and ``b/cat.png`` in one ``--out`` folder, or ``cat.png`` and ``cat.jpg`` side by side),
    the later ones get ``NAME-2.heatmap.png``, ``NAME-3...``; a name that is one of the input images is skipped
    too, so no heat map overwrites another, or an input."""
    taken = {Path(p).resolve() for p in images}
    given: dict[Path, Path] = {}
    out = []
    for p in images:
        key = Path(p).resolve()
        if key not in given:  # the same file twice: the same heat map
            base = heatmap_path(p, out_dir)
            target, n = base, 1
            while target.resolve() in taken:
                n += 1
                target = base.with_name(f"{Path(p).stem}-{n}.heatmap.png")
            taken.add(target.resolve())
            given[key] = target
        out.append(given[key])
    return out
