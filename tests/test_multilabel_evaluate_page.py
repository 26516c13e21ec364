"""The Evaluate and Train pages on multi-label runs, through AppTest: tiles beside the baseline, tuned thresholds
against a flat 0.5, the per-label table, the per-label confusion grid and a cell's examples, the error browser,
the comparison of two runs, and the problem type on the Train page.

Two tiny random BERTs trained 16 steps on a GoEmotions sample: their scores mean nothing, so the tests assert
what the pages show against what the saved evaluations say.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import files, runs
from bmcore.config import TrainConfig
from bmcore.report import examples as rex
from bmcore.tasks import MULTI_LABEL

TIMEOUT = 180  # the first run imports torch, transformers and scikit-learn on busy CPU cores


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with goe-tiny (600 GoEmotions rows, multi-label) and two finished multi-label runs, ml and ml2."""
    from bmcore.train import run_training

    if not (shared_data / "goemotions").is_dir():
        pytest.skip("../shared/data/goemotions is not present")
    ws = tmp_path_factory.mktemp("ml-evaluate-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        df = pd.read_csv(shared_data / "goemotions" / "train.csv").sample(600, random_state=0)
        ds = bdata.prepare(bdata.RawData("goemotions-sample", {"all": df}), "goe-tiny", seed=0)
        assert ds.problem_type == MULTI_LABEL
        bdata.save_prepared(ds)
        for name, seed in (("ml2", 1), ("ml", 42)):
            run = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="goe-tiny", max_steps=16,
                                              max_seq_length=48, per_device_train_batch_size=16, learning_rate=5e-4,
                                              eval_strategy="steps", eval_steps=8, logging_steps=4, seed=seed), name)
            assert run_training(run)["state"] == runs.COMPLETED
            assert (run / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).is_file()
    return ws


@pytest.fixture
def ws(finished: Path, workspace: Path) -> Path:
    shutil.copytree(finished, workspace, dirs_exist_ok=True)  # copy2 keeps mtimes, so the saved evaluations stay fresh
    return workspace


def saved(ws: Path, run: str = "ml") -> evf.EvalResult:
    return evf.load_eval(ws / "runs" / run / runs.EVALUATION_DIR / "test")


def open_evaluate(run: str = "ml") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="evaluate_run").select(run).run()
    assert not at.exception and not at.error
    return at


def table(at: AppTest, key: str) -> pd.DataFrame:
    found = [d for d in at.dataframe if getattr(d, "key", None) == key]
    assert found, f"no table {key}"
    return found[0].value


def busiest_cell(metrics: dict, cells: tuple[str, ...]) -> tuple[int, str, int]:
    """The label (index) and cell with the most examples among ``cells``, and that count."""
    at = {"tn": (0, 0), "fp": (0, 1), "fn": (1, 0), "tp": (1, 1)}
    matrices = metrics["label_confusion"]["matrices"]
    count, i, cell = max((matrices[i][at[c][0]][at[c][1]], i, c) for i in range(len(matrices)) for c in cells)
    return i, cell, count


@pytest.mark.slow
def test_evaluate_shows_multi_label_tiles_thresholds_per_label_table_cells_and_errors(ws: Path):
    result = saved(ws)
    m, names = result.metrics, result.label_names
    at = open_evaluate()
    values = {t.label: (t.value, t.delta) for t in at.metric}
    for label, key in (("Micro F1", "micro_f1"), ("Macro F1", "macro_f1"), ("Weighted F1", "weighted_f1"),
                       ("Samples F1", "samples_f1"), ("Subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss")):
        assert values[label][0] == f"{m[key]:.3f}", label
        assert values[label][1] == f"{m[key] - m['baseline'][key]:+.3f} vs baseline", label
    assert values["Baseline macro F1"][0] == f"{m['baseline']['macro_f1']:.3f}"
    assert "Accuracy" not in values and "ECE" not in values  # no single-label tiles

    # The gain of the tuned per-label thresholds over a flat 0.5, with what a per-label threshold is.
    flat = m["flat_threshold"]
    assert values["Macro F1, flat 0.5"][0] == f"{flat['macro_f1']:.3f}"
    assert values["Macro F1, tuned thresholds"][1] == f"{m['macro_f1'] - flat['macro_f1']:+.3f} vs 0.5"
    assert values["Micro F1, tuned thresholds"][1] == f"{m['micro_f1'] - flat['micro_f1']:+.3f} vs 0.5"
    assert any("per-label threshold" in t.value for t in at.markdown)
    assert any("fitted on the validation split" in c.value for c in at.caption)

    # The per-label table, in label order, with the thresholds saved with the model.
    per_label = next(d.value for d in at.dataframe if "threshold" in d.value.columns)  # a table without a key
    assert per_label["label"].tolist() == names
    model_meta = json.loads((ws / "runs" / "ml" / runs.MODEL_DIR / "bmcore.json").read_text())
    assert per_label["threshold"].tolist() == pytest.approx([model_meta["thresholds"][n] for n in names])
    assert per_label["support"].tolist() == [m["per_class"][n]["support"] for n in names]
    assert {"precision", "recall", "f1", "roc_auc", "pr_auc"} <= set(per_label.columns)

    # The confusion grid; a cell chosen below it lists that label's examples of that cell, and only those.
    assert len(at.get("plotly_chart")) >= 2  # per-label bars and the grid
    i, cell, count = busiest_cell(m, ("fp", "fn", "tp"))
    at.selectbox(key="evaluate_lcell_label").select(names[i]).run()
    at.radio(key="evaluate_lcell_cell").set_value(cell).run()
    assert not at.exception and not at.error
    rows = table(at, "evaluate_lcell_table")
    assert len(rows) == count > 0
    gold_has = rows["gold"].map(lambda t: names[i] in t.split(", "))
    pred_has = rows["pred"].map(lambda t: names[i] in t.split(", "))
    assert (gold_has == (cell != "fp")).all() and (pred_has == (cell != "fn")).all()
    assert not rows["gold"].str.startswith("[").any()  # label sets read as text, not JSON
    assert rows["score"].is_monotonic_decreasing if cell != "fn" else rows["score"].is_monotonic_increasing
    assert any(f"{rex.LABEL_CELLS[cell][0]} of" in t.value for t in at.markdown)

    # The error browser: sets not exactly right, highest loss first; then a gold-label filter on the sets.
    errors = table(at, "evaluate_errors_table")
    assert len(errors) == int((~result.predictions["correct"]).sum())
    assert errors["loss"].is_monotonic_decreasing and (errors["errors"] > 0).all()
    assert (errors["gold"] != errors["pred"]).all()
    at.radio(key="evaluate_err_show").set_value("All examples").run()
    at.multiselect(key="evaluate_err_gold").select(names[i]).run()
    rows = table(at, "evaluate_errors_table")
    assert len(rows) == m["per_class"][names[i]]["support"]
    assert rows["gold"].map(lambda t: names[i] in t.split(", ")).all()
    assert not at.exception and not at.error


def test_a_label_cell_example_opens_in_the_playground_with_its_gold_set(ws: Path):
    at = open_evaluate()
    result = saved(ws)
    i, cell, _ = busiest_cell(result.metrics, tuple(rex.LABEL_CELLS))
    at.selectbox(key="evaluate_lcell_label").select(result.label_names[i]).run()
    at.radio(key="evaluate_lcell_cell").set_value(cell).run()
    rows = table(at, "evaluate_lcell_table")
    gold = rows.iloc[0]["gold"]
    at.button(key="evaluate_lcell_open").click().run()
    assert at.title[0].value == "Playground"
    assert at.session_state["playground_input"] == rows.iloc[0]["text"]
    assert at.session_state["playground_true"][2] == gold  # the gold set, as text


def test_comparing_two_multi_label_runs(ws: Path):
    mine, theirs = saved(ws, "ml"), saved(ws, "ml2")
    at = open_evaluate("ml")
    charts = len(at.get("plotly_chart"))
    at.selectbox(key="evaluate_compare_run").select("ml2").run()
    assert not at.exception and not at.error
    tiles = {t.label: (t.value, t.delta) for t in at.metric if (t.delta or "").endswith("vs ml2")}
    for label, key in (("Macro F1", "macro_f1"), ("Micro F1", "micro_f1"), ("Subset accuracy", "subset_accuracy")):
        assert tiles[label] == (f"{mine.metrics[key]:.3f}", f"{mine.metrics[key] - theirs.metrics[key]:+.3f} vs ml2")
    assert len(at.get("plotly_chart")) == charts + 1  # the per-label F1 difference
    assert any("Now right (were wrong)" == t.label for t in at.metric)


def test_train_page_names_the_problem_type_and_shows_multi_label_results(ws: Path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_dataset").select("goe-tiny").run()
    assert not at.exception
    assert any("Multi-label" in i.value and "sigmoid per label" in i.value and "binary cross-entropy" in i.value
               for i in at.info)
    assert any(c.value.startswith(f"{len(saved(ws).label_names)} labels (") for c in at.caption)
    at.selectbox(key="train_pick").select("ml").run()
    result = json.loads((ws / "runs" / "ml" / runs.EVAL_FILE).read_text())
    test = result["test"]
    values = {t.label: t.value for t in at.metric}
    assert values["Test macro F1"] == f"{test['macro_f1']:.3f}"
    assert values["Test subset accuracy"] == f"{test['subset_accuracy']:.3f}"
    assert values["Tuned thresholds gain"] == f"{test['macro_f1'] - test['flat_threshold']['macro_f1']:+.3f}"
    assert "Test accuracy" not in values
    assert any("top_k=None" in c.value for c in at.code)
    assert not at.exception and not at.error


def test_train_page_starts_each_kind_of_problem_from_its_task_s_defaults(ws: Path, shared_data: Path):
    """Multi-label data fills the settings from the multi-label task's defaults, single-label data from TrainConfig's;
    switching between the two kinds refills them."""
    from bmcore.tasks import get_task

    sst = pd.read_csv(shared_data / "sst2" / "train.csv").sample(200, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst", {"all": sst}), "sst-small", seed=0))
    multi = {**TrainConfig().to_dict(), **get_task(MULTI_LABEL).defaults}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    for name, want in (("goe-tiny", multi), ("sst-small", TrainConfig().to_dict()), ("goe-tiny", multi)):
        at.selectbox(key="train_dataset").select(name).run()
        assert not at.exception
        assert at.number_input(key="train_lr").value == pytest.approx(want["learning_rate"]), name
        assert at.number_input(key="train_batch_growth").value == want["batch_growth"], name
        assert at.number_input(key="train_head_lr").value == pytest.approx(want["head_learning_rate"] or 0.0), name
        assert at.selectbox(key="train_class_weights").value == want["class_weights"], name
    assert any("--learning-rate" in c.value for c in at.code) == (multi["learning_rate"] != TrainConfig().learning_rate)


def overfit(run_dir: Path) -> None:
    """Continue a real run's metrics.jsonl as if it trained on: validation loss up to 1.6x its lowest, training loss
    halving (the records shaped as the training callback writes them)."""
    records = runs.read_metrics(run_dir)
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    last_train = [r for r in records if r["kind"] == "train"][-1]
    lowest = min(r["eval_loss"] for r in records if r["kind"] == "eval")
    for k, (train_loss, eval_loss) in enumerate(((0.5, 1.1), (0.3, 1.6)), start=1):
        step = last_eval["step"] + 8 * k
        runs.append_metrics(run_dir, {**last_train, "step": step, "loss": last_train["loss"] * train_loss})
        runs.append_metrics(run_dir, {**last_eval, "step": step, "eval_loss": lowest * eval_loss})


def never_predict(metrics_file: Path, key: str | None, labels: int = 5) -> list[str]:
    """Rewrite saved metrics as a model that never predicts ``labels`` of the labels with gold examples would score
    (no true and no false positives: precision, recall and F1 0), the rest as they were; returns those labels.
    This tiny model's tuned thresholds predict every label, so it never misses one by itself."""
    data = json.loads(metrics_file.read_text())
    m = data[key] if key else data
    names = [n for n, r in m["per_class"].items() if r["support"]][:labels]
    for n in names:
        m["per_class"][n].update(precision=0.0, recall=0.0, f1=0.0, predicted=0)
    files.write_json_atomic(metrics_file, data)
    return names


def test_train_and_evaluate_warn_of_labels_never_found_and_of_overfitting(ws: Path):
    run_dir = ws / "runs" / "ml"
    missed = never_predict(run_dir / runs.EVAL_FILE, "test")
    never_predict(run_dir / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE, None)
    overfit(run_dir)
    n_labels = len(saved(ws).label_names)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_pick").select("ml").run()
    warnings = [w.value for w in at.warning]
    assert any(w.startswith(f"5 of {n_labels} labels are never or almost never predicted right: {missed[0]} (F1 0.00, 0 of")
               and all(n in w for n in missed) and "class weights" in w for w in warnings), warnings
    assert any(w.startswith("Overfitting: the validation loss rose from its lowest") and "fewer epochs" in w
               for w in warnings), warnings

    at = open_evaluate()
    warnings = [w.value for w in at.warning]
    assert any(w.startswith(f"5 of {n_labels} labels are never") and all(n in w for n in missed) for w in warnings)
    assert any(w.startswith("Overfitting:") for w in warnings), warnings
    at = open_evaluate("ml2")  # its own metrics: every label found, no overfitting
    assert not [w.value for w in at.warning if w.value.startswith(("Overfitting:", "5 of"))]
