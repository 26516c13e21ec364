"""Every bad-input case of tests/catalogue.py, through the CLI and through the UI (AppTest).

CLI: exit code 2, one line on stderr with the case's fragment, no traceback, the workspace unchanged
(``ok`` cases: exit 0 and the notice). UI: ``st.error`` with the fragment, no exception, the workspace
unchanged (``ok`` cases: no error and the notice on the page).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalogue import BY_ID, CASES, LONG, SCRIPT, Case, Ctx, csv_bytes, readme_table, rows
from conftest import ROOT, start_stand_in_job
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import files, processes, runs
from bmcore.cli import main as cli_main
from bmcore.device import detect_device

TIMEOUT = 180
DATASET = "tiny-data"
CLI_IDS = [c.id for c in CASES if not c.no_cli]
UI_IDS = [c.id for c in CASES if not (c.no_ui or c.ui_skip)]
ROWS_KEPT = ("unicode-texts", "html-texts", "formula-texts", "parquet-categorical")


def snapshot(ws: Path) -> dict[str, tuple[int, int]]:
    """Every file under the workspace with its size and modification time."""
    return {str(p.relative_to(ws)): (p.stat().st_size, p.stat().st_mtime_ns) for p in ws.rglob("*") if p.is_file()}


@pytest.fixture
def ctx(tmp_path: Path, tiny_model: Path, workspace: Path) -> Iterator[Ctx]:
    """A prepared tiny dataset and a second one with other labels in the workspace; broken model folders outside it."""
    bdata.save_prepared(bdata.prepare(bdata.RawData("rows", {"all": rows(60)}), DATASET, seed=0))
    bdata.save_prepared(bdata.prepare(bdata.RawData("spam", {"all": rows(60, ("ham", "spam"))}), "spam-data", seed=0))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "no-weights").mkdir()
    (scratch / "no-weights" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (scratch / "pickle").mkdir()
    (scratch / "pickle" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (scratch / "pickle" / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    (scratch / "remote").mkdir()
    (scratch / "remote" / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "x.Model"}}))
    (scratch / "remote" / "model.safetensors").write_bytes((tiny_model / "model.safetensors").read_bytes())
    made = Ctx(scratch, tiny_model, workspace)
    yield made
    for proc in made.procs:
        proc.kill()
        proc.wait()


def model_ref(case: Case, ctx: Ctx) -> str | None:
    ref = case.train.get("model")
    return ref.format(tmp=ctx.tmp, no_weights=ctx.tmp / "no-weights", pickle=ctx.tmp / "pickle",
                      remote=ctx.tmp / "remote") if ref else None


def busy_run(ctx: Ctx) -> None:
    """A run that reads as running: its pid is a live stand-in job process (conftest.start_stand_in_job)."""
    proc = start_stand_in_job()
    ctx.procs.append(proc)
    folder = runs.runs_dir() / "busy"
    folder.mkdir()
    files.write_json_atomic(folder / runs.CONFIG_FILE, {"model_name_or_path": "builtin:minilm", "dataset": DATASET})
    files.write_json_atomic(folder / runs.STATUS_FILE, {"state": "running", "pid": proc.pid,
                                                        "pid_start": processes.process_start(proc.pid), "created": runs.now()})


# --- CLI ------------------------------------------------------------------------------------------


def cli_args(case: Case, ctx: Ctx) -> list[str]:
    if case.kind == "folder":
        return ["data", "prepare", str(case.folder(ctx.tmp)), "--name", "case"]
    if case.kind in ROUND_TWO_KINDS:
        return round_two_args(case, ctx)
    if case.kind == "file" or case.kind == "name":
        name, data = case.file() if case.file else ("rows.csv", csv_bytes(rows()))
        path = ctx.tmp / name
        path.write_bytes(data)
        if case.kind == "name":
            return ["data", "prepare", str(path), "--name", "../evil"]
        return ["data", "inspect" if case.ok else "prepare", str(path), *case.cli_args,
                *([] if case.ok else ["--name", "case"])]
    if case.kind == "limit":
        path = ctx.tmp / "rows.csv"
        path.write_bytes(csv_bytes(rows()))
        return ["data", "inspect", str(path)]
    if case.kind == "predict":
        return ["predict", "--model", str(ctx.tiny_model), case.text or ""]
    if case.kind == "evaluate":
        return ["evaluate", "--model", str(ctx.tiny_model), "--data", "spam-data", "--out", str(ctx.tmp / "eval")]
    if case.train.get("name"):
        return ["runs", "show", case.train["name"]]
    flags = {"max_steps": 2, "max_seq_length": 32, **{k: v for k, v in case.train.items()
                                                     if k not in ("model", "hub", "name", "background")}}
    model = model_ref(case, ctx) or case.train.get("hub") or str(ctx.tiny_model)
    args = ["train", "--data", DATASET, "--model", model]
    for k, v in flags.items():
        if v is not None:
            args += ["--" + k.replace("_", "-"), str(v)]
    return args + (["--background"] if case.train.get("background") else [])


@pytest.mark.slow
@pytest.mark.parametrize("case_id", CLI_IDS)
def test_cli(case_id: str, ctx: Ctx, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = BY_ID[case_id]
    if case.id == "fp16-on-cpu" and detect_device().kind != "cpu":
        pytest.skip("the fp16 fallback is a CPU behaviour")
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    if case.id == "demo-jobs":
        busy_run(ctx)
    args = cli_args(case, ctx)
    before = snapshot(ctx.workspace)
    if case.ok and case.kind == "train":
        # A real (two-step) training job: in its own process, as users run it.
        out = subprocess.run([sys.executable, "-m", "bmcore", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=600, env=os.environ.copy())
        assert out.returncode == 0, out.stderr[-2000:]
        assert case.expect in out.stderr and "Traceback" not in out.stderr
        return
    with read_only(ctx.workspace) if case.kind == "readonly" else contextlib.nullcontext():
        try:
            rc = cli_main(args)
        except SystemExit as exc:  # argparse refuses a flag's value by exiting, as it does on the command line
            rc = exc.code
    out = capsys.readouterr()
    assert not case.secret or case.secret not in out.out + out.err, "a message showed a linked file's content"
    if case.ok:
        assert rc == 0, out.err
        check_ok_output(case, out.out)
        return
    assert rc == 2, (out.out, out.err)
    err = out.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert (case.cli_expect or case.expect) in err, err
    assert snapshot(ctx.workspace) == before, "a refused input wrote into the workspace"


def check_ok_output(case: Case, stdout: str) -> None:
    if case.kind == "runs":
        listed = {r["name"]: r for r in map(json.loads, stdout.strip().splitlines())}
        assert set(listed) == DAMAGED_RUNS | {"good"}, listed
        assert listed["good"]["state"] == "completed" and not listed["good"]["error"]
        assert all(case.expect in listed[n]["error"] for n in DAMAGED_RUNS), listed
        return
    if case.kind == "predict":
        rec = json.loads(stdout.strip().splitlines()[0])
        assert rec["label"] in ("negative", "positive") and rec["text"] == case.text
        assert rec["truncated"] is (case.text == LONG)
        return
    stats = json.loads(stdout)
    if case.id in ROWS_KEPT:
        assert stats["rows_total"] == 60 and not stats["dropped_empty"]
    else:
        assert case.expect in json.dumps(stats["notes"] + stats["warnings"]), stats["notes"] + stats["warnings"]


# --- UI -------------------------------------------------------------------------------------------


def open_app(**state: object) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def ui_data(case: Case, ctx: Ctx) -> AppTest:
    if case.kind == "limit":
        at = open_app(data_source_kind="Local file or folder")
        path = ctx.tmp / "rows.csv"
        path.write_bytes(csv_bytes(rows()))
        return at.text_input(key="data_path").input(str(path)).run()
    at = open_app(data_source_kind="Upload a file")
    name, data = case.file() if case.file else ("rows.csv", csv_bytes(rows()))
    at.file_uploader(key="data_upload").upload(name, data, "application/octet-stream").run()
    if case.kind == "name":
        name_box = next(t for t in at.text_input if str(t.key).startswith("data_name_"))
        name_box.input("../evil").run()
        at.button(key="data_save").click().run()
    return at


def ui_train(case: Case, ctx: Ctx) -> AppTest:
    at = open_app()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_dataset").select(DATASET).run()
    if case.train.get("hub"):
        at.radio(key="train_model_kind").set_value("Hugging Face Hub").run()
        at.text_input(key="train_model_hub").input(case.train["hub"]).run()
    else:
        at.radio(key="train_model_kind").set_value("Local folder").run()
        at.text_input(key="train_model_path").input(model_ref(case, ctx) or str(ctx.tiny_model)).run()
    if "num_train_epochs" in case.train:
        at.number_input(key="train_epochs").set_value(case.train["num_train_epochs"])
    else:
        at.radio(key="train_length").set_value("steps").run()
        at.number_input(key="train_max_steps").set_value(2)
    at.number_input(key="train_max_seq_length").set_value(case.train.get("max_seq_length", 32))
    if "learning_rate" in case.train:
        at.number_input(key="train_lr").set_value(case.train["learning_rate"])
    if "precision" in case.train:
        at.selectbox(key="train_precision").select(case.train["precision"])
    if "name" in case.train:
        at.text_input(key="train_name").input(case.train["name"])
    if "report_to" in case.train:
        at.selectbox(key="train_report_to").set_value(case.train["report_to"]).run()
    if "tracking_uri" in case.train:
        at.text_input(key="train_tracking_uri").input(case.train["tracking_uri"])
    at.run()
    if case.train.get("background") and not at.error:
        at.button(key="train_start").click().run()
    return at


def ui_predict(case: Case, ctx: Ctx) -> AppTest:
    at = open_app()
    at.switch_page("pages/playground.py").run()
    at.selectbox(key="playground_model_choice").select("(another local folder)").run()
    at.text_input(key="playground_path").input(str(ctx.tiny_model)).run()
    return at.text_area(key="playground_input").input(case.text or "").run()


def ui_evaluate(case: Case, ctx: Ctx) -> AppTest:
    at = open_app()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="evaluate_source").set_value("Local model folder").run()
    at.text_input(key="evaluate_model_path").input(str(ctx.tiny_model)).run()
    return at.selectbox(key="evaluate_dataset").select("spam-data").run()


def ui_folder(case: Case, ctx: Ctx) -> AppTest:
    at = open_app(data_source_kind="Local file or folder")
    return at.text_input(key="data_path").input(str(case.folder(ctx.tmp))).run()


DRIVERS = {"file": ui_data, "name": ui_data, "limit": ui_data, "train": ui_train, "predict": ui_predict,
           "evaluate": ui_evaluate, "folder": ui_folder}


def rendered_markdown(at: AppTest) -> list[str]:
    """Every string the page hands to Streamlit's Markdown renderer (bodies, alerts, metric, tab and widget labels)."""
    out = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in at.get(kind)]
    out += [x for m in at.metric for x in (m.label, m.value, m.proto.delta)]
    out += [b.label for kind in ("expander", "tab", "button") for b in at.get(kind)]
    out += [w.label for kind in ("selectbox", "multiselect", "radio", "text_input") for w in at.get(kind)]
    return [str(x) for x in out]


def check_shown_as_text(case: Case, at: AppTest) -> None:
    """Data on the page stays text: no Markdown payload verbatim, no linked file's content anywhere."""
    shown = rendered_markdown(at)
    for payload in case.markdown:
        assert not any(payload in s for s in shown), (payload, [s for s in shown if payload in s])
    if case.secret:
        assert not any(case.secret in s for s in shown) and not any(case.secret in e.value for e in at.get("code"))


@pytest.mark.parametrize("case_id", UI_IDS)
def test_ui(case_id: str, ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_ID[case_id]
    if case.id == "fp16-on-cpu" and detect_device().kind != "cpu":
        pytest.skip("the fp16 fallback is a CPU behaviour")
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    if case.id == "demo-jobs":
        busy_run(ctx)
    if case.make is not None:
        case_path = case.make(ctx)
    before = snapshot(ctx.workspace)
    with read_only(ctx.workspace) if case.kind == "readonly" else contextlib.nullcontext():
        at = DRIVERS[case.kind](case, ctx) if case.make is None else ROUND_TWO_DRIVERS[case.kind](case, ctx, case_path)
    assert not at.exception, [e.value for e in at.exception]
    check_shown_as_text(case, at)
    errors = [e.value for e in at.error]
    if case.ok:
        assert not errors, errors
        check_ok_page(case, at)
        return
    assert errors and any(case.expect in e for e in errors), errors
    assert all("\n" not in e and "Traceback" not in e for e in errors), errors
    assert snapshot(ctx.workspace) == before, "a refused input wrote into the workspace"


def check_ok_page(case: Case, at: AppTest) -> None:
    if case.kind == "runs":
        check_runs_page(case, at)
        return
    shown = [x.value for x in [*at.caption, *at.warning, *at.info]]
    if case.kind == "predict":
        assert "Prediction" in {m.label for m in at.metric}
        if case.text == LONG:
            assert any(case.expect in s for s in shown), shown
        if case.text == SCRIPT:
            html = " ".join(h.proto.body for h in at.get("html"))
            # WordPiece splits it into <, script, >: each token is escaped on its own
            assert "&lt;" in html and "&gt;" in html and "<script" not in html and "<b>" not in html
        return
    if case.id in ROWS_KEPT:
        assert {m.label: m.value for m in at.metric}["Rows"] == "60"
        return
    assert any(case.expect in s for s in shown), shown


def test_readme_lists_every_case() -> None:
    """The README's catalogue table is the one generated from tests/catalogue.py (scripts/catalogue_table.py)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, "README is stale: run python scripts/catalogue_table.py"
    assert len(CASES) >= 30


# --- round two (issue 17, items 5-14): the new kinds of tests/catalogue.py -------------------------

ROUND_TWO_KINDS = ("cli", "runs", "path", "model", "readonly", "run", "evaluation", "resave")
DAMAGED_RUNS = {"bad-created", "bad-started", "bad-pid", "bad-metric"}


def round_two_args(case: Case, ctx: Ctx) -> list[str]:
    """The case's command, its template filled: {path} (what ``make`` built), {model} (the tiny model)."""
    path = case.make(ctx) if case.make else ""
    return [a.format(path=path, model=ctx.tiny_model) for a in case.cli_args]


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` and everything in it read-only for the duration: ``chmod`` for a user; as root, who ignores
    permission bits, the immutable attribute (``chattr +i``), which root's writes obey too."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p, mode in modes.items():
            p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True).returncode:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
        pytest.skip("cannot make a folder read-only for root here (no chattr, or a file system without it)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], check=True)


def ui_path(case: Case, ctx: Ctx, path: Path) -> AppTest:
    at = open_app(data_source_kind="Local file or folder")
    return at.text_input(key="data_path").input(str(path)).run()


def ui_model(case: Case, ctx: Ctx, path: Path) -> AppTest:
    at = open_app()
    at.switch_page("pages/playground.py").run()
    at.selectbox(key="playground_model_choice").select("(another local folder)").run()
    at.text_input(key="playground_path").input(str(path)).run()
    return at  # the page refuses the folder before it offers a text box


def ui_runs(case: Case, ctx: Ctx, path: Path) -> AppTest:
    at = open_app()
    return at.switch_page("pages/train.py").run()


def ui_readonly(case: Case, ctx: Ctx, path: Path) -> AppTest:
    """Save a dataset from the Data page into the read-only workspace."""
    at = open_app(data_source_kind="Local file or folder")
    at.text_input(key="data_path").input(str(path)).run()
    name_box = next(t for t in at.text_input if str(t.key).startswith("data_name_"))
    name_box.input("fresh").run()
    return at.button(key="data_save").click().run()


def ui_run(case: Case, ctx: Ctx, path: Path) -> AppTest:
    """Open the run ``path`` on the Train page (issue 26: damaged run files)."""
    at = open_app()
    at.switch_page("pages/train.py").run()
    return at.selectbox(key="train_pick").select(path.name).run()


def ui_evaluation(case: Case, ctx: Ctx, path: Path) -> AppTest:
    """Pick the run ``path`` on the Evaluate page, its own test split (issue 26: a damaged saved evaluation)."""
    at = open_app()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="evaluate_run").select(path.name).run()
    at.selectbox(key="evaluate_dataset").select(DATASET).run()
    return at.selectbox(key="evaluate_split").select("test").run()


def ui_resave(case: Case, ctx: Ctx, path: Path) -> AppTest:
    """Save a dataset from the Data page under the name of one that a run was trained on (Save, if it is offered)."""
    at = open_app(data_source_kind="Local file or folder")
    at.text_input(key="data_path").input(str(path)).run()
    next(t for t in at.text_input if str(t.key).startswith("data_name_")).input("tiny-data").run()
    save = at.button(key="data_save")
    return at if save.disabled else save.click().run()


ROUND_TWO_DRIVERS = {"path": ui_path, "model": ui_model, "runs": ui_runs, "readonly": ui_readonly, "run": ui_run,
                     "evaluation": ui_evaluation, "resave": ui_resave}


def check_runs_page(case: Case, at: AppTest) -> None:
    """The Train page lists every run, the damaged ones as failed; opening one says why; the other pages that
    list runs (Evaluate, Playground, Pretrain) still open."""
    table = at.dataframe[0].value
    assert set(table["name"]) == DAMAGED_RUNS | {"good"}
    assert set(table.loc[table["name"].isin(DAMAGED_RUNS), "state"]) == {"failed"}
    for name in sorted(DAMAGED_RUNS):
        at.selectbox(key="train_pick").select(name).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(f"status.json in {name} is damaged" in e.value for e in at.error), [e.value for e in at.error]
    for page in ("pages/evaluate.py", "pages/playground.py", "pages/pretrain.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


# --- issue 27, evaluate folders: the CLI scores the folder, the Evaluate page an upload of it zipped ----------------

ROUND_TWO_KINDS += ("evaluate-source",)


def ui_evaluate_source(case: Case, ctx: Ctx, path: Path) -> AppTest:
    """Upload ``path/photos.zip`` on the Evaluate page, for the model ``path/model`` (else the tiny text model)."""
    at = open_app()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="evaluate_source").set_value("Local model folder").run()
    model = path / "model" if (path / "model").is_dir() else ctx.tiny_model
    at.text_input(key="evaluate_model_path").input(str(model)).run()
    at.radio(key="evaluate_data_kind").set_value("Upload a file").run()
    return at.file_uploader(key="evaluate_upload").upload("photos.zip", (path / "photos.zip").read_bytes(),
                                                          "application/zip").run()


ROUND_TWO_DRIVERS["evaluate-source"] = ui_evaluate_source
