"""The Train page's tracking setting through AppTest: the command shows it, the run's config holds it, the run view
says how to open the records; a missing package is one st.error and no Start button."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import runs, tracking

TIMEOUT = 120  # the first run imports torch and transformers on 2 busy CPU cores


def tiny_settings(dataset: str, model: Path) -> AppTest:
    """The Train page with the local tiny model, 4 steps, evaluated every 2, short inputs."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_dataset").select(dataset).run()
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(model)).run()
    at.radio(key="train_length").set_value("steps").run()
    at.number_input(key="train_max_steps").set_value(4)
    at.number_input(key="train_max_seq_length").set_value(32)
    at.radio(key="train_eval_strategy").set_value("steps").run()
    at.number_input(key="train_eval_steps").set_value(2)
    return at.run()


def test_mlflow_settings_reach_the_command_and_the_run_s_config(tiny_model, sst_tiny, workspace):
    at = tiny_settings(sst_tiny, tiny_model)
    assert "train_tracking_uri" not in [w.key for w in at.text_input]  # hidden until MLflow is chosen
    at.selectbox(key="train_report_to").select("mlflow").run()
    assert any("Tracking sends" in c.value for c in at.caption)  # the one-sentence explanation
    assert at.text_input(key="train_tracking_uri").placeholder == f"sqlite:///{workspace / 'mlflow.db'}"
    assert at.text_input(key="train_experiment_name").placeholder == sst_tiny
    uri = f"sqlite:///{workspace / 'store' / 'mlflow.db'}"
    at.text_input(key="train_tracking_uri").input(uri)
    at.text_input(key="train_experiment_name").input("sentiment").run()
    assert not at.exception and not at.error
    [command] = [c.value for c in at.code if c.value.startswith("python -m bmcore train")]
    assert f"--report-to mlflow --tracking-uri {uri} --experiment-name sentiment" in command

    at.button(key="train_start").click().run()  # the run itself is tests/test_tracking.py's: stop it at once
    [run_dir] = list(runs.runs_dir().iterdir())
    runs.request_stop(run_dir)
    config = runs.load_run_config(run_dir)
    assert (config.report_to, config.tracking_uri, config.experiment_name) == ("mlflow", uri, "sentiment")
    assert f"mlflow ui --backend-store-uri {uri}" in [c.value for c in at.code]  # the run view says how to open it


def test_tensorboard_run_view_shows_the_logdir(tiny_model, sst_tiny):
    at = tiny_settings(sst_tiny, tiny_model)
    at.selectbox(key="train_report_to").select("tensorboard").run()
    assert "train_tracking_uri" not in [w.key for w in at.text_input]  # MLflow's settings only for MLflow
    at.button(key="train_start").click().run()
    [run_dir] = list(runs.runs_dir().iterdir())
    runs.request_stop(run_dir)
    assert runs.load_run_config(run_dir).report_to == "tensorboard"
    assert any(c.value.startswith("tensorboard --logdir ") and c.value.endswith(str(Path(run_dir.name) / "tensorboard"))
               for c in at.code)


def test_a_missing_tracker_is_an_error_and_no_start(tiny_model, sst_tiny, monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda name: name == "none")
    at = tiny_settings(sst_tiny, tiny_model)
    at.selectbox(key="train_report_to").select("mlflow").run()
    assert not at.exception
    assert [e.value for e in at.error] and "pip install mlflow" in at.error[0].value
    assert any("pip install mlflow" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "train_start"]
