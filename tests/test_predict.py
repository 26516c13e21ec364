"""predict() and the ``predict`` CLI on a model fine-tuned here, checked against transformers.pipeline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore.cli import main
from bmcore.errors import BmcoreError
from bmcore.inference import load_for_inference, predict
from bmcore.model_meta import write_model_meta

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tuned(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """builtin:minilm with a 2-class head fine-tuned on 512 SST-2 rows (a linear probe, plain torch), as safetensors.

    Only the head trains, on features computed once, so it takes seconds on a CPU yet
    gives a real, confident sentiment model.
    """
    import torch

    from bmcore.models import load_classifier, load_tokenizer

    torch.manual_seed(0)
    model = load_classifier("builtin:minilm", label_names=["negative", "positive"]).eval()
    tok = load_tokenizer("builtin:minilm")
    train = pd.read_csv(shared_data / "sst2" / "train.csv").sample(512, random_state=0)
    y = torch.tensor([model.config.label2id[v] for v in train["label"]])
    texts = train["text"].tolist()
    with torch.no_grad():
        feats = torch.cat([model.bert(**tok(texts[i:i + 64], truncation=True, max_length=64, padding=True,
                                            return_tensors="pt")).pooler_output for i in range(0, len(texts), 64)])
    opt = torch.optim.Adam(model.classifier.parameters(), lr=0.05)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model.classifier(feats), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path_factory.mktemp("tuned") / "model"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def dev(shared_data: Path) -> list[str]:
    """50 SST-2 dev sentences."""
    return pd.read_csv(shared_data / "sst2" / "dev.csv")["text"].head(50).tolist()


def _pipeline_probs(folder: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(folder), device="cpu")
    out = pipe(texts, top_k=None, batch_size=16)
    names = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]
    probs = np.array([[next(d["score"] for d in row if d["label"] == n) for n in names] for row in out])
    return [names[i] for i in probs.argmax(1)], probs


@pytest.mark.slow
def test_labels_match_pipeline(tuned: Path, dev: list[str]) -> None:
    want, want_probs = _pipeline_probs(tuned, dev)
    assert len(set(want)) == 2, "the fine-tuned model should predict both classes"
    # fp32: the same computation as the pipeline, so every label matches.
    exact = predict(load_for_inference(str(tuned), precision="fp32"), dev)
    assert [r["label"] for r in exact] == want
    got = np.array([[r["scores"][n] for n in ("negative", "positive")] for r in exact])
    np.testing.assert_allclose(got, want_probs, atol=1e-4)
    # auto (bf16 autocast where the CPU has it): same labels wherever the pipeline is not a coin toss.
    fast = predict(load_for_inference(str(tuned)), dev)
    fast_probs = np.array([[r["scores"][n] for n in ("negative", "positive")] for r in fast])
    np.testing.assert_allclose(fast_probs, want_probs, atol=0.02)
    clear = np.abs(want_probs[:, 1] - 0.5) > 0.02
    assert [r["label"] for r, c in zip(fast, clear, strict=True) if c] == [w for w, c in zip(want, clear, strict=True) if c]


def test_records_and_calibration(tuned: Path, tmp_path: Path) -> None:
    clf = load_for_inference(str(tuned))
    recs = predict(clf, ["a great film", "dull and lifeless"], calibrated=True)
    assert all(set(r) == {"label", "scores", "truncated"} for r in recs)  # no temperature saved
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 for r in recs)
    folder = tmp_path / "calibrated"
    shutil.copytree(tuned, folder)
    write_model_meta(folder, temperature=3.0)
    recs = predict(load_for_inference(str(folder)), ["a great film"], calibrated=True)
    cal, raw = recs[0]["calibrated_scores"], recs[0]["scores"]
    assert abs(sum(cal.values()) - 1) < 1e-5
    assert max(cal.values()) <= max(raw.values()) + 1e-6  # temperature > 1 flattens
    pair = predict(clf, ["a great film"], pairs=["it was long"])
    assert pair[0]["label"] in ("negative", "positive")


def test_bad_input(tuned: Path) -> None:
    clf = load_for_inference(str(tuned))
    with pytest.raises(BmcoreError, match="no texts"):
        predict(clf, [])
    with pytest.raises(BmcoreError, match="pairs"):
        predict(clf, ["a", "b"], pairs=["x", "y", "z"])


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_cli_predict(tuned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--model", str(tuned), "a great film", "dull <b>and</b> lifeless"]) == 0
    rows = _lines(capsys)
    assert len(rows) == 2
    assert all(set(r["scores"]) == {"negative", "positive"} and r["label"] in r["scores"] for r in rows)
    assert "attentions" not in rows[0]


def test_cli_explain(tuned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--model", str(tuned), "--explain", "--n-steps", "16", "a great film"]) == 0
    (row,) = _lines(capsys)
    t = len(row["tokens"])
    assert row["tokens"][0] == "[CLS]" and len(row["attributions"]) == t
    att = np.array(row["attentions"])
    assert att.shape == (6, 12, t, t)  # [layers][heads][tokens][tokens] of MiniLM
    np.testing.assert_allclose(att.sum(-1), 1, atol=1e-3)
    assert row["truncated"] is False and row["target"] == row["label"]


def test_cli_file(tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "in.txt"
    txt.write_text("a great film\n\ndull and lifeless\n", encoding="utf-8")
    assert main(["predict", "--model", str(tuned), "--file", str(txt)]) == 0
    assert [r["text"] for r in _lines(capsys)] == ["a great film", "dull and lifeless"]
    csv = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": ["good", "bad", "fine"]}).to_csv(csv, index=False)
    assert main(["predict", "--model", str(tuned), "--file", str(csv), "--max-seq-length", "4", "a much longer text here"]) == 0
    rows = _lines(capsys)
    assert [r["text"] for r in rows] == ["a much longer text here", "good", "bad", "fine"]
    assert rows[0]["truncated"] is True and rows[1]["truncated"] is False


def test_cli_errors(tuned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--model", str(tuned)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no texts") and err.count("\n") == 1
    assert main(["predict", "--model", str(tuned), "--explain", "--target", "neutral", "ok"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_cli_missing_model_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bmcore", "predict", "--model", str(tmp_path / "nope"), "hello"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


def test_few_shapes_give_the_same_scores_from_a_bounded_set_of_shapes(tiny_model, shared_data):
    """A server's batches (``few_shapes``): powers of two inputs, padded to a multiple of PAD_MULTIPLE tokens, and the
    same scores as the plain path, for batches of every size from 1 to 32."""
    from bmcore.inference import PAD_MULTIPLE

    clf = load_for_inference(str(tiny_model), precision="fp32")
    texts = pd.read_csv(shared_data / "sst2" / "dev.csv")["text"].astype(str).tolist()
    shapes: dict[bool, set] = {False: set(), True: set()}
    forward, few = clf.model.forward, [False]
    clf.model.forward = lambda **batch: shapes[few[0]].add(tuple(batch["input_ids"].shape)) or forward(**batch)
    start = 0
    for n in range(1, 33):
        batch = texts[start:start + n]
        start += n
        few[0] = False
        plain = clf.predict_proba(batch, batch_size=32).probs
        few[0] = True
        assert np.allclose(clf.predict_proba(batch, batch_size=32, few_shapes=True).probs, plain, atol=1e-5)
    assert all(size & (size - 1) == 0 and tokens % PAD_MULTIPLE == 0 for size, tokens in shapes[True])
    assert len(shapes[True]) < len(shapes[False])  # 32 sizes, each its own shape on the plain path
