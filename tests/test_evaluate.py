"""Evaluation: metrics against scikit-learn, ECE by hand, temperature scaling, baseline, run comparison, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMS_RARE

from bmcore.baseline import baseline_metrics, baseline_probs, fit_baseline
from bmcore.cli import main
from bmcore.compare import compare_runs
from bmcore.data import load_source, prepare, save_prepared
from bmcore.errors import BmcoreError
from bmcore.evaluate import evaluate_model, predict_split, prediction_table
from bmcore.evaluation_files import load_eval
from bmcore.metrics import compute_metrics, expected_calibration_error, reliability_bins
from bmcore.report.examples import roc_pr_curves
from bmcore.tasks.single_label_classification import TASK as SINGLE_LABEL_TASK
from bmcore.tasks.single_label_classification import apply_temperature, fit_temperature, nll

# --- helpers -------------------------------------------------------------------------------


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --- metrics -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emotion_preds(shared_data: Path) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Fixed, realistic predictions: the baseline trained on emotion train, scored on emotion val (6 classes)."""
    train = read_csv(shared_data / "emotion" / "train.csv").head(4000)  # fast; the predictions only need to be realistic
    val = read_csv(shared_data / "emotion" / "val.csv")
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]  # the dataset's id order, not alphabetical
    probs = baseline_probs(fit_baseline(train, names), val, names)
    return val["label"].tolist(), SINGLE_LABEL_TASK.decide(probs, names), probs, names


def test_metrics_equal_sklearn(emotion_preds):
    from sklearn import metrics as skm

    gold, pred, probs, names = emotion_preds
    m = compute_metrics(gold, pred, probs, names)
    assert m["n"] == len(gold) == 2000
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(gold, pred))
    for avg in ("macro", "micro", "weighted"):
        assert m[f"{avg}_precision"] == pytest.approx(skm.precision_score(gold, pred, average=avg, zero_division=0))
        assert m[f"{avg}_recall"] == pytest.approx(skm.recall_score(gold, pred, average=avg, zero_division=0))
        assert m[f"{avg}_f1"] == pytest.approx(skm.f1_score(gold, pred, average=avg, zero_division=0))
    report = skm.classification_report(gold, pred, labels=names, output_dict=True, zero_division=0)
    for n in names:
        for key in ("precision", "recall", "f1"):
            assert m["per_class"][n][key] == pytest.approx(report[n]["f1-score" if key == "f1" else key])
        assert m["per_class"][n]["support"] == report[n]["support"]
    y = np.array([names.index(g) for g in gold])
    assert m["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["macro_pr_auc"] == pytest.approx(np.mean([skm.average_precision_score(y == i, probs[:, i]) for i in range(6)]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=list(range(6))))
    assert m["confusion_matrix"]["labels"] == names
    assert m["confusion_matrix"]["matrix"] == skm.confusion_matrix(gold, pred, labels=names).tolist()
    assert 0 < m["ece"] < 1 and len(m["reliability"]) == 15
    json.dumps(m)  # JSON-ready: plain floats and ints only


def test_metrics_with_a_class_absent_from_gold(emotion_preds):
    gold, pred, probs, names = emotion_preds
    keep = [i for i, g in enumerate(gold) if g != "surprise"]
    m = compute_metrics([gold[i] for i in keep], [pred[i] for i in keep], probs[keep], names)
    assert m["per_class"]["surprise"]["support"] == 0
    assert m["per_class"]["surprise"]["roc_auc"] is None and m["per_class"]["joy"]["roc_auc"] > 0.5
    assert m["macro_roc_auc"] is not None and m["log_loss"] > 0
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == len(keep)


def test_binary_auc_uses_the_second_class():
    from sklearn.metrics import average_precision_score, roc_auc_score

    gold = ["spam", "ham", "ham", "spam", "ham", "ham"]
    p_spam = np.array([0.9, 0.2, 0.6, 0.4, 0.1, 0.3])
    probs = np.c_[1 - p_spam, p_spam]
    pred = ["spam" if p > 0.5 else "ham" for p in p_spam]
    m = compute_metrics(gold, pred, probs, ["ham", "spam"])
    y = np.array([g == "spam" for g in gold])
    assert m["macro_roc_auc"] == pytest.approx(roc_auc_score(y, p_spam))
    assert m["macro_pr_auc"] == pytest.approx(average_precision_score(y, p_spam))
    curves = roc_pr_curves(prediction_table(pd.DataFrame({"text": list("abcdef"), "label": gold}), probs, ["ham", "spam"],
                                            are_probs=True), ["ham", "spam"])
    assert list(curves) == ["spam"] and curves["spam"]["roc"]["auc"] == pytest.approx(roc_auc_score(y, p_spam))


def test_confusion_matrix_keeps_label_order_and_sums_to_n():
    names = ["positive", "negative", "neutral"]  # deliberately not alphabetical
    gold = ["positive", "positive", "negative", "neutral", "neutral", "negative", "positive"]
    pred = ["positive", "negative", "negative", "positive", "neutral", "negative", "neutral"]
    m = compute_metrics(gold, pred, None, names)
    cm = m["confusion_matrix"]
    assert cm["labels"] == names
    assert cm["matrix"] == [[1, 1, 1],   # gold positive -> positive, negative, neutral
                            [0, 2, 0],   # gold negative
                            [1, 0, 1]]   # gold neutral
    assert sum(map(sum, cm["matrix"])) == len(gold)
    assert m["ece"] is None and m["macro_roc_auc"] is None
    assert m["top_confusions"][0]["count"] == 1


def test_unknown_label_is_a_clear_error():
    with pytest.raises(BmcoreError, match="'maybe' is not one of"):
        compute_metrics(["yes", "maybe"], ["yes", "no"], None, ["no", "yes"])


def test_an_evaluation_saved_with_the_old_key_names_still_reads(tmp_path):
    """metrics.json written before the one set of key names (``f1_macro``, ``roc_auc_macro``, ...) reads back in
    today's names, its baseline too; and so does an old multi-label eval.json with its flat-threshold section."""
    from bmcore import runs
    from bmcore.report import evaluation as rev

    old = {"n": 2, "accuracy": 0.5, "f1_macro": 0.4, "macro_f1": 0.4, "f1_micro": 0.5, "f1_weighted": 0.45,
           "precision_macro": 0.3, "recall_macro": 0.6, "roc_auc_macro": 0.7, "pr_auc_macro": 0.65, "ece": 0.1,
           "log_loss": 0.9, "baseline": {"accuracy": 0.5, "f1_macro": 0.2}, "per_class": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    pd.DataFrame({"text": ["a", "b"], "gold": ["x", "y"], "pred": ["x", "x"]}).to_csv(tmp_path / "predictions.csv",
                                                                                    index=False)
    m = load_eval(tmp_path).metrics
    assert (m["macro_f1"], m["micro_f1"], m["weighted_f1"]) == (0.4, 0.5, 0.45)
    assert (m["macro_precision"], m["macro_recall"], m["macro_roc_auc"], m["macro_pr_auc"]) == (0.3, 0.6, 0.7, 0.65)
    assert m["baseline"]["macro_f1"] == 0.2
    assert not {"f1_macro", "f1_micro", "roc_auc_macro"} & (set(m) | set(m["baseline"]))
    tiles = {t["label"]: t for row in rev.headline_tiles(m) for t in row}
    assert tiles["Macro F1"]["value"] == "0.400" and tiles["Baseline macro F1"]["value"] == "0.200"

    run = tmp_path / "run"
    run.mkdir()
    (run / runs.EVAL_FILE).write_text(json.dumps({"problem_type": "multi_label_classification", "test": {
        "f1_macro": 0.4, "macro_f1": 0.4, "f1_micro": 0.6, "f1_samples": 0.55, "subset_accuracy": 0.3,
        "flat_threshold": {"threshold": 0.5, "f1_macro": 0.35, "f1_micro": 0.5}}}))
    test = runs.read_eval(run)["test"]
    assert (test["micro_f1"], test["samples_f1"], test["flat_threshold"]["macro_f1"]) == (0.6, 0.55, 0.35)


# --- calibration ---------------------------------------------------------------------------


def test_ece_matches_a_hand_computed_case():
    # Confidences .93 right, .82 wrong, .55 right, .71 right, .61 right, .65 wrong; 10 bins.
    p = np.array([0.93, 0.18, 0.55, 0.29, 0.61, 0.35])  # probability of class 0
    probs = np.c_[p, 1 - p]
    gold = np.array([0, 0, 0, 1, 0, 0])
    # Bins (0.9,1]: gap .07; (0.8,.9]: |0-.82|; (.5,.6]: |1-.55|; (.7,.8]: |1-.71|; (.6,.7]: 2 x |.5-.63|.
    expected = (0.07 + 0.82 + 0.45 + 0.29 + 2 * 0.13) / 6
    pred = np.array([0, 1, 0, 1, 0, 1])  # the top class of each row
    assert expected_calibration_error(probs, gold, pred, n_bins=10) == pytest.approx(expected)
    bins = reliability_bins(probs, gold, pred, n_bins=10)
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 1, 2, 1, 1, 1]
    assert bins[6]["confidence"] == pytest.approx(0.63) and bins[6]["accuracy"] == 0.5
    assert bins[3]["confidence"] is None
    # A confidence on an upper edge belongs to that bin: (0.4, 0.5] holds 0.5.
    assert reliability_bins(np.array([[0.5, 0.5]]), [0], [0], n_bins=10)[4]["count"] == 1
    with pytest.raises(ValueError):
        reliability_bins(probs, gold, pred, n_bins=5)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 4))
    gold = np.array([rng.choice(4, p=row) for row in apply_temperature(true_logits, 1.0)])
    t = fit_temperature(3.0 * true_logits, gold)  # over-confident by a factor of 3
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(3.0 * true_logits, gold, t) < nll(3.0 * true_logits, gold, 1.0)
    assert fit_temperature(np.zeros((0, 2)), []) == 1.0


# --- baseline ------------------------------------------------------------------------------


@pytest.mark.slow
def test_baseline_on_sst2_is_reproducible_and_in_the_sanity_band(shared_data):
    train = read_csv(shared_data / "sst2" / "train.csv")
    dev = read_csv(shared_data / "sst2" / "dev.csv")
    names = ["negative", "positive"]
    a = baseline_metrics(train, dev, names, decide=SINGLE_LABEL_TASK.decide)
    b = baseline_metrics(train, dev, names, decide=SINGLE_LABEL_TASK.decide)
    assert 0.75 <= a["accuracy"] <= 0.85
    for key in ("accuracy", "macro_f1", "log_loss", "ece", "confusion_matrix", "per_class"):
        assert a[key] == b[key]
    assert a["model"] == "tfidf-logreg" and a["n"] == 872


def test_baseline_joins_text_pairs():
    from bmcore.baseline import baseline_texts

    df = pd.DataFrame({"text": ["a man sleeps", "a dog runs"], "text_pair": ["nobody sleeps", "an animal moves"],
                       "label": ["contradiction", "entailment"]})
    assert baseline_texts(df) == ["a man sleeps [SEP] nobody sleeps", "a dog runs [SEP] an animal moves"]


# --- predictions and comparison --------------------------------------------------------------


def test_predict_split_table_and_label_mismatch(tiny_model, shared_data, tmp_path):
    from bmcore.tiny_models import make_tiny_bert

    dev = read_csv(shared_data / "sst2" / "dev.csv").head(40)
    calls = []
    table = predict_split(str(tiny_model), dev, ["negative", "positive"], progress=lambda d, n: calls.append((d, n)))
    assert list(table.columns) == ["text", "gold", "pred", "prob_negative", "prob_positive", "confidence", "loss",
                                   "correct", "truncated"]
    assert len(table) == 40 and table["text"].tolist() == dev["text"].tolist()
    assert np.allclose(table[["prob_negative", "prob_positive"]].sum(axis=1), 1)
    gold_p = np.where(table["gold"] == "negative", table["prob_negative"], table["prob_positive"])
    assert np.allclose(table["loss"], -np.log(gold_p))
    assert (table["correct"] == (table["gold"] == table["pred"])).all()
    assert calls[-1] == (40, 40)

    generic = make_tiny_bert(tmp_path / "generic", ["LABEL_0", "LABEL_1"])
    spam = pd.DataFrame({"text": ["win a prize now", "see you at lunch"], "label": ["spam", "ham"]})
    with pytest.raises(BmcoreError, match=r"model labels \[LABEL_0, LABEL_1\] do not match dataset labels \[ham, spam\]"):
        predict_split(str(generic), spam, ["ham", "spam"])


def test_compare_runs_on_fixed_tables(shared_data):
    dev = read_csv(shared_data / "sst2" / "dev.csv")
    pos, neg = dev[dev["label"] == "positive"].head(3), dev[dev["label"] == "negative"].head(3)
    dev = pd.concat([pos.iloc[[0]], neg.iloc[[0]], pos.iloc[[1, 2]], neg.iloc[[1, 2]]], ignore_index=True)
    names = ["negative", "positive"]
    gold = dev["label"].tolist()
    assert gold == ["positive", "negative", "positive", "positive", "negative", "negative"]
    # a: right on rows 0,1,2,3; b: right on rows 0,1,4,5 (flips: 2,3 right->wrong, 4,5 wrong->right).
    pa = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7], [0.45, 0.55]])
    pb = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]])
    a = prediction_table(dev, pa, names, are_probs=True)
    b = prediction_table(dev, pb, names, are_probs=True)
    cmp = compare_runs(a, b, names)
    assert cmp["accuracy_a"] == cmp["accuracy_b"] == pytest.approx(4 / 6)
    assert cmp["right_to_wrong"].index.tolist() == [2, 3]
    assert cmp["wrong_to_right"].index.tolist() == [4, 5]
    assert cmp["right_to_wrong"]["pred_b"].tolist() == ["negative", "negative"]
    assert cmp["wrong_to_right"]["confidence_a"].tolist() == pytest.approx([0.7, 0.55])
    # a: [[1, 2], [0, 3]]; b: [[3, 0], [2, 1]] (rows gold negative, positive).
    assert cmp["confusion_diff"] == {"labels": names, "matrix": [[2, -2], [2, -2]]}
    assert cmp["per_class"]["negative"]["f1_diff"] == pytest.approx(0.75 - 0.5)
    assert cmp["per_class"]["positive"]["f1_diff"] == pytest.approx(0.5 - 0.75)
    with pytest.raises(BmcoreError, match="same split"):
        compare_runs(a, b.iloc[::-1].reset_index(drop=True), names)


# --- a real fine-tuned model (slow) ----------------------------------------------------------


@pytest.fixture(scope="module")
def spam(minilm_sms, tmp_path_factory):
    """conftest's builtin:minilm fine-tune on SMS spam (49:1, 250 validation messages), its model copied and evaluated
    again here on its test split with ``save_temperature``."""
    from bmcore.data import load_prepared

    model_dir = tmp_path_factory.mktemp("spam") / "model"
    shutil.copytree(minilm_sms / "runs" / "rare" / "model", model_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(minilm_sms))
        ds = load_prepared(SMS_RARE)
    out = tmp_path_factory.mktemp("spam-eval")
    result = evaluate_model(str(model_dir), ds, "test", out, save_temperature=True)
    return ds, model_dir, result


def check_temperature_kept_only_if_it_helps(ds, model_dir: Path, result) -> None:
    """The temperature rule on a model evaluated with ``save_temperature``: fitted on a validation split of 100 rows or
    more, kept (and saved) exactly when the cross-fitted log loss improves, otherwise none saved and the reason with
    the model; checked independently on the validation split with the model's own logits."""
    from bmcore.inference import load_for_inference
    from bmcore.model_meta import read_model_meta
    from bmcore.tasks.single_label_classification import MIN_TEMPERATURE_ROWS

    cal = result.metrics["calibration"]
    assert cal["validation_rows"] == len(ds.splits["validation"]) >= MIN_TEMPERATURE_ROWS and cal["saved"]
    helps = cal["fitted"] != 1.0 and cal["nll_heldout_after"] < cal["nll_heldout_before"]
    clf = load_for_inference(str(model_dir))
    assert (clf.temperature is not None) == (result.metrics["temperature"] is not None) == helps, cal
    val = ds.splits["validation"]
    pred = clf.predict_proba(val["text"].tolist())
    gold = val["label"].map({n: i for i, n in enumerate(clf.label_names)}).to_numpy()
    assert nll(pred.logits, gold, cal["fitted"]) <= nll(pred.logits, gold) + 1e-9  # the fit minimises validation NLL
    if helps:
        assert cal["fitted_on"] == "validation" and clf.temperature == pytest.approx(cal["fitted"])
        rows = np.arange(len(gold))
        assert -np.log(pred.calibrated_probs[rows, gold]).mean() < -np.log(pred.probs[rows, gold]).mean()
        assert result.metrics["ece_calibrated"] is not None
    else:
        assert cal["reason"] and read_model_meta(model_dir)["temperature_reason"] == cal["reason"]
        assert pred.calibrated_probs is None and result.metrics["ece_calibrated"] is None


@pytest.mark.slow
@pytest.mark.xdist_group("minilm_sms")  # one worker builds conftest's minilm_sms for all its tests
def test_temperature_scaling_is_kept_only_if_it_lowers_held_out_nll(spam):
    # Was test_temperature_scaling_lowers_validation_nll, which asserted a temperature is always kept: the rule now
    # keeps one only where it lowers the log loss on validation rows it was not fitted on (issue 27).
    check_temperature_kept_only_if_it_helps(*spam)


@pytest.mark.slow
@pytest.mark.xdist_group("minilm_sms")  # one worker builds conftest's minilm_sms for all its tests
def test_finetuned_minilm_beats_the_baseline_on_sms_spam(spam):
    ds, _, result = spam
    m = result.metrics
    assert m["n"] == len(ds.splits["test"])
    assert m["baseline"]["n"] == m["n"] and m["baseline"]["train_rows"] == len(ds.splits["train"])
    assert m["macro_f1"] > m["baseline"]["macro_f1"], (m["macro_f1"], m["baseline"]["macro_f1"])
    assert m["confusion_matrix"]["labels"] == ["ham", "spam"]


@pytest.mark.slow
@pytest.mark.xdist_group("minilm_sms")  # one worker builds conftest's minilm_sms for all its tests
def test_saved_evaluation_reads_back(spam):
    _, _, result = spam
    back = load_eval(result.out_dir)
    assert back.metrics == json.loads(json.dumps(result.metrics))
    assert len(back.predictions) == len(result.predictions)
    assert back.predictions["correct"].dtype == bool
    assert back.predictions["gold"].tolist() == result.predictions["gold"].tolist()
    assert np.allclose(back.predictions["prob_spam"], result.predictions["prob_spam"])


# --- CLI -------------------------------------------------------------------------------------


def test_cli_missing_model_exits_2(tmp_path, shared_data, capsys):
    rc = main(["evaluate", "--model", str(tmp_path / "no-such-model"), "--data", str(shared_data / "sst2" / "dev.csv"),
               "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_label_mismatch_exits_2(tiny_model, tmp_path, shared_data, capsys):
    spam = read_csv(shared_data / "sms_spam" / "all.csv").head(30)
    spam.to_csv(tmp_path / "spam.csv", index=False)
    rc = main(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "spam.csv"), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "model labels [negative, positive] do not match dataset labels [ham, spam]" in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_writes_metrics_and_predictions(tiny_model, tmp_path, shared_data, capsys):
    ds = prepare(load_source(str(shared_data / "sst2" / "dev.csv")), name="sst2-dev", seed=0)
    save_prepared(ds)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_model), "--data", "sst2-dev", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "predictions.csv")
    n = len(ds.splits["test"])
    assert summary["n"] == metrics["n"] == len(preds) == n
    assert metrics["split"] == "test"
    for key in ("accuracy", "macro_precision", "micro_recall", "weighted_f1", "per_class", "ece", "log_loss"):
        assert key in metrics
    assert metrics["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == n
    assert metrics["baseline"]["n"] == n and metrics["baseline"]["train_rows"] == len(ds.splits["train"])
    # 88 validation rows: too few to trust a fitted temperature (at least 100), and the summary says so.
    assert metrics["temperature"] is None and metrics["calibration"]["fitted_on"] is None
    assert summary["temperature_reason"] == metrics["calibration"]["reason"] == (
        "the validation split has 88 examples; at least 100 are needed to trust a fitted temperature")
    assert {"text", "gold", "pred", "prob_negative", "prob_positive", "confidence", "loss", "correct"} <= set(preds.columns)


def test_cli_scores_a_single_file_whole(tiny_model, tmp_path, shared_data, capsys):
    dev = read_csv(shared_data / "sst2" / "dev.csv").head(50)
    dev.to_csv(tmp_path / "few.csv", index=False)
    rc = main(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "few.csv"), "--out", str(tmp_path / "out")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 50 and summary["split"] == "all" and summary["baseline"] is None
    assert any("baseline was skipped" in note for note in summary["notes"])


def test_missed_classes_name_what_is_never_predicted():
    from bmcore.tasks.single_label_classification import missed_classes, missed_classes_note

    matrix = [[50, 0, 1], [2, 40, 0], [8, 1, 0]]  # the third class (9 examples) is never predicted right
    missed = missed_classes(matrix, ["a", "b", "rare"])
    assert missed == [{"label": "rare", "recall": 0.0, "hits": 0, "support": 9, "predicted": 1}]
    note = missed_classes_note(missed)
    assert note.startswith("Class rare (0 of 9 test examples) is never or almost never predicted right")
    assert "class weights (balanced)" in note
    assert missed_classes([[5, 0], [0, 0]], ["a", "b"]) == []  # no examples of b: nothing to say
    assert missed_classes_note([]) == ""
