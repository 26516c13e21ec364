"""Helpers for the browser tests: `streamlit run app.py` on a free port, and Playwright steps on its pages."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from bmcore import files, runs

CHROMIUM = os.environ.get("BMCORE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does it)")


# Servers handed back by a test (stop()) and free for the next one, by environment: starting `streamlit run` and its
# first script run (torch, transformers, the device) costs seconds on 2 cores, so Server(ws) reuses one when it can.
_FREE: dict[tuple, Server] = {}
_STARTED: list[subprocess.Popen] = []  # every server this session started: none outlives it
_LINK_DIRS: list[Path] = []  # the temporary folder of each one's workspace link: none outlives the session


def _env_key() -> tuple:
    # What a server took from os.environ, less what changes by itself from one test to the next.
    return tuple(sorted((k, v) for k, v in os.environ.items() if k not in {"PYTEST_CURRENT_TEST", "BMCORE_WORKSPACE"}))


@atexit.register
def _stop_all() -> None:
    for proc in _STARTED:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for folder in _LINK_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


class Server:
    """`streamlit run app.py` serving ``workspace``, in its own process group (so it can be killed as a whole).

    Shared: the server's BMCORE_WORKSPACE is a symbolic link. stop() hands a live server back, and a later Server(ws)
    with the same environment takes it and points the link at its own ``ws`` (bmcore resolves the workspace on every
    use, so each page, cache key and job from then on sees only ``ws``). A server is never shared by two holders at
    once; kill() really kills it, and the next Server() starts a fresh one. ``fresh=True``: a server of its own.
    """

    def __init__(self, workspace: Path, port: int | None = None, fresh: bool = False) -> None:
        self.workspace = Path(workspace)
        self.shared, self._key = not fresh and port is None, _env_key()
        free = _FREE.pop(self._key, None) if self.shared else None
        if free is not None and free.proc.poll() is None:
            self.port, self.url, self.link, self.log_path, self.proc = free.port, free.url, free.link, free.log_path, free.proc
            self._point(self.workspace)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            return
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.link = Path(tempfile.mkdtemp(prefix="bmcore-e2e-")) / "workspace"
        _LINK_DIRS.append(self.link.parent)
        self._point(self.workspace)
        env = {**os.environ, "BMCORE_WORKSPACE": str(self.link), "HF_HUB_OFFLINE": "1"}
        # Beside the workspace link, not in the test's tmp_path: a later test takes the server over, and pytest removes
        # a passed test's tmp_path (tmp_path_retention_policy "failed").
        self.log_path = self.link.parent / f"server-{self.port}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        _STARTED.append(self.proc)
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.time() < deadline, self.log_path.read_text()[-2000:]
            time.sleep(0.5)

    def _point(self, workspace: Path) -> None:
        """Point the server's workspace link at ``workspace`` (a new link renamed over the old: never missing)."""
        tmp = self.link.with_name(f"link-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(workspace.resolve(), target_is_directory=True)
        os.replace(tmp, self.link)

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash or a container restart would."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        """Done with the server: a shared one is handed back for the next test, one of its own is terminated."""
        self._log.close()
        if _FREE.get(self._key) is self:  # stopped twice
            return
        if self.shared and self.proc.poll() is None and self._key not in _FREE:
            _FREE[self._key] = self
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def open_app(workspace: Path) -> Iterator:
    """A headless Chromium page on a `streamlit run` server of ``workspace``, at the front page and idle. On leaving
    without an exception: no JavaScript error was raised on the page. The browser is closed and the server handed back
    either way."""
    from playwright.sync_api import sync_playwright

    need_chromium()
    server = Server(workspace)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(120_000)
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(server.url)
                idle(page)
                yield page
                assert not errors, errors
            finally:
                browser.close()
    finally:
        server.stop()


def idle(page, timeout: float = 120) -> None:
    """Wait until Streamlit has finished the current script run (and no rerun is asked for)."""
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
                           "document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
                           timeout=timeout * 1000)
    page.wait_for_timeout(300)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    if box.locator("input").input_value() == option:
        return
    field = box.locator("input")
    field.click()
    field.press_sequentially(option)  # Streamlit's selectbox filters as you type
    page.get_by_role("option", name=option).first.click()
    idle(page)


def fill(page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True).first
    field.fill(value)
    field.press("Enter")
    idle(page)


def go(page, title: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # exact: "Train" must not match the "Pretrain" link and heading
    link, heading = (page.get_by_role("link", name=title, exact=True).first,
                     page.get_by_role("heading", name=title, exact=True).first)
    link.click()
    idle(page)
    try:
        heading.wait_for(timeout=20_000)
    except PlaywrightTimeout:
        # Seen once under a loaded fp32 suite: a click that landed while the run view's live fragment reran did not
        # navigate (the page stayed on Train). A user clicks again; so does the test, once.
        link.click()
        idle(page)
        heading.wait_for()


def set_up_tiny_run(page, dataset: str, model, max_seq_length: int, steps: int | None) -> None:
    """The Train page set for a local (tiny) model on ``dataset``, by steps (None: Steps left for the test to type)."""
    go(page, "Train")
    choose(page, "Prepared dataset", dataset)
    page.get_by_text("Local folder", exact=True).click()
    idle(page)
    fill(page, "Path to a save_pretrained folder (safetensors weights)", str(model))
    page.get_by_text("steps", exact=True).first.click()
    idle(page)
    if steps is not None:
        fill(page, "Steps", str(steps))
    fill(page, "max_seq_length (tokens)", str(max_seq_length))


def upload(page, path: Path) -> None:
    """Upload ``path`` on the Data page's "Upload a file" source and wait for its stats."""
    page.get_by_text("Upload a file", exact=True).click()
    idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.get_by_role("heading", name="Stats").first.wait_for()
    idle(page)


def train_to_the_end(page, workspace: Path) -> Path:
    """Press the Train page's "Start training", wait for the one run it starts to complete, reload; its folder."""
    page.get_by_role("button", name="Start training").click()
    idle(page)
    deadline = time.time() + 60
    while not (workspace / "runs").is_dir() or not any((workspace / "runs").iterdir()):
        assert time.time() < deadline, "no run folder appeared"
        time.sleep(0.5)
    (run_dir,) = (workspace / "runs").iterdir()
    assert wait_runs_ended([run_dir])[run_dir.name][-1] == "completed", runs.log_tail(run_dir)
    page.reload()
    idle(page)
    return run_dir


def wait_code(page, *parts: str, timeout: float = 120) -> None:
    """Wait until one of the page's code blocks (the command line) holds every one of ``parts``: the server has them."""
    page.locator('[data-testid="stCode"]').filter(has_text=parts[0]).first.wait_for(timeout=timeout * 1000)
    deadline = time.time() + timeout
    while not any(all(p in c for p in parts) for c in page.locator('[data-testid="stCode"]').all_inner_texts()):
        assert time.time() < deadline, (parts, page.locator('[data-testid="stCode"]').all_inner_texts())
        page.wait_for_timeout(300)


def wait_job_result(page, text: str, workspace: Path, timeout: float = 300) -> None:
    """Wait until ``text`` shows, which a background job's result draws. On a timeout, fail with what would explain
    it: each job's status and log tail, the page's last lines, and the processes running."""
    try:
        page.get_by_text(text).first.wait_for(timeout=timeout * 1000)
    except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError; re-raised with the evidence
        jobs = {d.name: (files.read_json(d / runs.STATUS_FILE), runs.log_tail(d))
                for d in sorted(Path(workspace).glob("jobs/*")) if (d / runs.STATUS_FILE).exists()}
        procs = subprocess.run(["ps", "-eo", "pid,etime,pcpu,args"], capture_output=True, text=True).stdout
        page_text = page.locator("body").inner_text()[-1500:]
        raise AssertionError(f"{text!r} did not show in {timeout:.0f} s; jobs: {jobs}; page ends: {page_text!r}; "
                             f"processes: {[ln for ln in procs.splitlines() if 'python' in ln][:30]}") from exc


def wait_runs_ended(run_dirs, stall: float = 300) -> dict[str, list[str]]:
    """Poll run folders until every run has ended; returns each run's states as seen, in order.

    No deadline on the whole: a slow CPU takes longer but keeps moving. It fails only when no run moved (state, step,
    metrics or log) for ``stall`` seconds, which on any machine means a stuck job.
    """
    run_dirs = [Path(d) for d in run_dirs]
    seen: dict[str, list[str]] = {d.name: [] for d in run_dirs}
    last, moved = None, time.time()
    while True:
        marks = []
        for d in run_dirs:
            # A run folder is listed from its config.json; its status.json follows a moment later (being created).
            state = runs.read_status(d)["state"] if (d / runs.STATUS_FILE).exists() else runs.QUEUED
            if not seen[d.name] or seen[d.name][-1] != state:
                seen[d.name].append(state)
            log = d / runs.LOG_FILE
            marks.append((state, len(runs.read_metrics(d)), log.stat().st_size if log.exists() else 0))
        if all(m[0] not in runs.ACTIVE for m in marks):
            return seen
        if marks != last:
            last, moved = marks, time.time()
        assert time.time() - moved < stall, (seen, {d.name: runs.log_tail(d) for d in run_dirs})
        time.sleep(0.2)


def shot(page, folder: Path, name: str) -> None:
    """Screenshot the whole app into ``folder``: Streamlit scrolls inside its main container, so grow the viewport
    to fit it first."""
    height = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 1000), 7000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def ask_playground(page, text: str) -> None:
    """Type ``text`` into the Playground and run it (Ctrl+Enter); wait until the page has finished."""
    box = page.get_by_label("Text", exact=True).first
    box.fill(text)
    box.press("Control+Enter")
    idle(page, timeout=180)
