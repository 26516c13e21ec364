"""explain(): attention maps, rollout, Integrated Gradients completeness, truncation, HTML escaping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bmcore.errors import BmcoreError
from bmcore.explain import (
    Explanation,
    attention_rollout,
    attributions_html,
    cls_attention,
    eager_model,
    explain,
)
from bmcore.inference import Classifier, load_for_inference

TEXT = "it 's a charming and often affecting journey , though the ending drags ."


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """builtin:minilm with a seeded 2-class head, scaled so that its probabilities are far from 0.5."""
    import torch

    from bmcore.models import load_classifier, load_tokenizer

    model = load_classifier("builtin:minilm", label_names=["negative", "positive"])
    torch.manual_seed(0)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("minilm") / "model"
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer("builtin:minilm").save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def clf(minilm_dir: Path) -> Classifier:
    return load_for_inference(str(minilm_dir))


def test_attentions_and_rollout(clf: Classifier) -> None:
    ex = explain(clf, TEXT, attributions=False)
    t = len(ex.tokens)
    assert ex.tokens[0] == "[CLS]" and ex.tokens[-1] == "[SEP]" and not ex.truncated
    assert ex.attentions is not None and ex.attentions.shape == (6, 12, t, t)
    np.testing.assert_allclose(ex.attentions.sum(-1), 1, atol=1e-5)
    assert ex.rollout is not None and ex.rollout.shape == (t, t)
    np.testing.assert_allclose(ex.rollout.sum(-1), 1, atol=1e-6)
    np.testing.assert_allclose(ex.cls_rollout, ex.rollout[0])
    np.testing.assert_allclose(ex.cls_attention, ex.attentions[-1].mean(0)[0], rtol=1e-6)
    assert ex.attributions is None and ex.label in ("negative", "positive")
    d = json.loads(json.dumps(ex.to_dict()))
    assert np.array(d["attentions"]).shape == (6, 12, t, t)
    # The ordinary predict path stays on SDPA; the eager twin shares its weights and is cached.
    assert clf.model.config._attn_implementation == "sdpa"
    twin = eager_model(clf)
    assert twin is eager_model(clf) and twin.config._attn_implementation == "eager"
    assert twin.get_input_embeddings().weight.dtype == torch.float32  # IG needs fp32 gradients
    if clf.model.dtype == torch.float32:  # fp32 inference: the twin shares the weights, no second copy
        assert twin.get_input_embeddings().weight.data_ptr() == clf.model.get_input_embeddings().weight.data_ptr()


def test_rollout_math() -> None:
    t = 4
    uniform = np.full((3, 2, t, t), 1 / t)
    # Heads averaged, identity added, rows renormalised: (U + I) / 2 per layer, multiplied through.
    layer = (np.full((t, t), 1 / t) + np.eye(t)) / 2
    np.testing.assert_allclose(attention_rollout(uniform), layer @ layer @ layer)
    np.testing.assert_allclose(attention_rollout(np.broadcast_to(np.eye(t), (2, 3, t, t))), np.eye(t))
    np.testing.assert_allclose(attention_rollout(uniform, residual=False), np.full((t, t), 1 / t))
    np.testing.assert_allclose(cls_attention(uniform), np.full(t, 1 / t))
    with pytest.raises(ValueError):
        attention_rollout(np.ones((2, 3, 4)))


def _target_prob(clf: Classifier, ids: list[int], target: int) -> float:
    import copy

    import torch

    x = torch.tensor([ids])
    model = copy.deepcopy(clf.model).float()  # IG explains the fp32 model; inference may hold bf16 weights
    with torch.no_grad():
        return float(model(input_ids=x, attention_mask=torch.ones_like(x)).logits.softmax(-1)[0, target])


def test_integrated_gradients_completeness(clf: Classifier) -> None:
    ex = explain(clf, TEXT, n_steps=32)
    assert ex.attributions is not None and ex.attributions.shape == (len(ex.tokens),)
    assert ex.target == ex.label
    # f(x) - f(baseline) for the target's probability, computed here independently; the
    # baseline keeps [CLS]/[SEP] and puts [PAD] everywhere else.
    pad = clf.tokenizer.pad_token_id
    base = [ex.token_ids[0]] + [pad] * (len(ex.token_ids) - 2) + [ex.token_ids[-1]]
    diff = _target_prob(clf, ex.token_ids, ex.target_id) - _target_prob(clf, base, ex.target_id)
    assert abs(diff) > 0.05, "the scaled head should move the probability noticeably"
    assert ex.output_diff == pytest.approx(diff, abs=1e-4)
    # captum's delta is sum(attributions) - (f(x) - f(baseline)), so this is completeness ...
    assert ex.attributions.sum() - ex.delta == pytest.approx(diff, abs=1e-4)
    # ... and a small delta means the integral converged: the attributions alone nearly add up.
    assert abs(ex.delta) < 0.02 * abs(diff) + 1e-4
    assert ex.attributions[0] == 0 and ex.attributions[-1] == 0  # special tokens equal the baseline

    other = explain(clf, TEXT, target=1 - ex.target_id, attention=False, n_steps=32)
    assert other.target_id == 1 - ex.target_id and other.attentions is None
    # Two classes: P(other) = 1 - P(target), so the attributions flip sign.
    np.testing.assert_allclose(other.attributions, -ex.attributions, atol=1e-4)
    assert explain(clf, TEXT, target=ex.target, attention=False, n_steps=8).target_id == ex.target_id


def test_text_pair(clf: Classifier) -> None:
    ex = explain(clf, "a charming journey", "the ending drags", n_steps=8)
    assert ex.tokens.count("[SEP]") == 2
    assert ex.attentions is not None and ex.attentions.shape[-1] == len(ex.tokens)


def test_truncation_and_long_input(clf: Classifier) -> None:
    short = load_for_inference(clf.ref, max_seq_length=16)
    ex = explain(short, TEXT + " " + TEXT, n_steps=8)
    assert ex.truncated and ex.n_tokens > 16 and len(ex.tokens) == 16 and ex.tokens[-1] == "[SEP]"
    assert ex.attributions is not None and len(ex.attributions) == 16
    huge = ("word " * 2000)[:10_000]
    ex = explain(clf, huge, n_steps=8)
    assert len(huge) == 10_000
    assert ex.truncated and ex.n_tokens > 2000 and len(ex.tokens) == clf.max_seq_length
    assert ex.attentions is not None and ex.attentions.shape[-1] == clf.max_seq_length
    assert np.isfinite(ex.attributions).all()


def test_bad_input(clf: Classifier) -> None:
    with pytest.raises(BmcoreError, match="empty"):
        explain(clf, "   ")
    with pytest.raises(BmcoreError, match="unknown target"):
        explain(clf, TEXT, target="neutral")
    with pytest.raises(BmcoreError, match="unknown target"):
        explain(clf, TEXT, target=5)


def test_html_escapes_tokens() -> None:
    tokens = ["[CLS]", "<", "script", ">", "alert", "(", "1", ")", "<script>", "un", "##believ", "##able", "[SEP]"]
    scores = np.linspace(-1, 1, len(tokens))
    out = attributions_html(tokens, scores, target="<b>pos</b>")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<b>" not in out and "&lt;b&gt;pos&lt;/b&gt;" in out
    assert "[CLS]" not in out and "##" not in out  # special tokens hidden, WordPieces joined
    assert ">un</span><span" in out and "believ" in out
    assert "rgba(220,38,38" in out and "rgba(22,163,74" in out  # negative red, positive green
    assert "supports" in out and "opposes" in out  # the legend
    assert "[CLS]" in attributions_html(tokens, scores, hide_special=False)
    with pytest.raises(ValueError):
        attributions_html(["a"], [0.1, 0.2])


def test_explanation_is_json_ready(clf: Classifier) -> None:
    ex = explain(clf, "<script>alert(1)</script>", n_steps=8)
    assert isinstance(ex, Explanation)
    d = ex.to_dict(decimals=4)
    text = json.dumps(d)
    assert json.loads(text)["tokens"] == ex.tokens
    assert d["attribution_output"] == "probability" and set(d["probs"]) == {"negative", "positive"}
    assert "&lt;" in attributions_html(ex.tokens, ex.attributions)
