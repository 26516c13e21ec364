"""The engine never imports the UI toolkit."""

import subprocess
import sys

from conftest import ROOT


def test_import_bmcore_leaves_streamlit_out():
    code = "import sys, bmcore, bmcore.cli; import bmcore.data, bmcore.models; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_streamlit_import_in_engine_source():
    for path in (ROOT / "bmcore").rglob("*.py"):
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path


def test_every_command_s_help_prints():
    """``--help`` of each command prints its usage (help strings with "%" once broke ``train --help``)."""
    import contextlib
    import io

    from bmcore.cli import COMMANDS, main

    for name in COMMANDS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([name, "--help"])
        assert out.getvalue().startswith("usage:") and name in out.getvalue(), name


def _engine_imports() -> dict[str, set[str]]:
    """Every import between bmcore modules, at module level or inside functions: module -> modules it imports."""
    import ast

    root = ROOT / "bmcore"
    mods = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - max(node.level - 1, 0)] if node.level else []
                module = ".".join([*base, node.module] if node.module else base) if node.level else node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def test_no_import_circles_inside_the_engine():
    """Not even through imports inside functions: each module's dependencies form a tree, not a circle."""
    graph = _engine_imports()
    assert {"bmcore.train", "bmcore.trainer", "bmcore.tasks", "bmcore.metrics"} <= set(graph)
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*path[path.index(nxt):], nxt])
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_only_tasks_turn_logits_into_scores():
    """Softmax and sigmoid of logits live in bmcore/tasks/ alone: every other module asks the model's task."""
    import re

    applies = re.compile(r"\.softmax\(|\.sigmoid\(|\bsoftmax\(|\bsigmoid\(|log_softmax|logsigmoid")
    for path in (ROOT / "bmcore").rglob("*.py"):
        if "tasks" in path.relative_to(ROOT / "bmcore").parts:
            continue
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        hits = [line for line in code if applies.search(line.split("#")[0])]
        assert not hits, f"{path.relative_to(ROOT)} applies softmax/sigmoid itself: {hits[0].strip()}"


def test_a_task_is_one_registered_module():
    from bmcore.tasks import TASKS, get_task

    for problem_type in TASKS:
        task = get_task(problem_type)
        assert task.problem_type == problem_type and task.title
        assert (ROOT / "bmcore" / "tasks" / f"{problem_type}.py").is_file()
