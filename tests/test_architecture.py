"""Architecture: the engine never imports the UI toolkit, has no import circle, keeps its modules short, and
only the task and modality seams compare against a kind of problem or input (issue 28)."""

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


def _engine_graph_with_registries() -> dict[str, set[str]]:
    """:func:`_engine_imports` plus what a module loads by name through ``importlib`` (a registry such as
    ``bmcore.tasks.TASKS`` names its modules in strings): a circle hidden behind ``importlib`` is a circle. A logger's
    name (``logging.getLogger("bmcore.train")``, shared by the training job's modules) loads nothing."""
    import ast

    graph = _engine_imports()
    for name in list(graph):
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        tree = ast.parse(path.read_text())
        logger_names = {id(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
                        and getattr(n.func, "attr", getattr(n.func, "id", None)) == "getLogger"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in graph \
                    and node.value.startswith("bmcore.") and node.value != name and id(node) not in logger_names:
                graph[name].add(node.value)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each a set of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle_hides_behind_importlib():
    """A task registry loads its modules with importlib; the modules it loads must not import what imports it."""
    graph = _engine_graph_with_registries()
    assert "bmcore.tasks.masked_lm" in graph["bmcore.tasks"]  # the registry's strings are seen
    assert _circles(graph) == []


ENGINE_MODULE_LINES = 500  # issue 28: no engine module over about 500 lines, no function over about 80
FUNCTION_LINES = 80


def _python_files() -> list:
    return sorted([*(ROOT / "bmcore").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"])


# Issue 28 shrinks these to nothing: each is a module (or function) still over its cap, with the most it may hold
# until it is split. A module that is not listed may not pass the cap; a listed one may not grow.
LONG_MODULES: dict[str, int] = {}
LONG_FUNCTIONS: dict[str, int] = {}


def _over(found: dict[str, int], allowed: dict[str, int], cap: int) -> dict[str, int]:
    return {k: n for k, n in found.items() if n > allowed.get(k, cap)}


def test_engine_modules_stay_short():
    lines = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "bmcore").rglob("*.py")}
    assert _over(lines, LONG_MODULES, ENGINE_MODULE_LINES) == {}, "split these by job"


def test_functions_stay_short():
    import ast

    lines = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines[f"{path.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert _over(lines, LONG_FUNCTIONS, FUNCTION_LINES) == {}, "split these into named steps"


PRIVATE_CROSSINGS = 0  # issue 28 took this to 0


def test_no_private_name_crosses_a_module():
    """``from .x import _name`` or ``module._name`` of another bmcore module: a name another module needs is public."""
    import ast

    hits = []
    for path in [*_python_files(), *(ROOT / "bmcore" / "cli").glob("*.py")]:
        tree = ast.parse(path.read_text())
        modules = set()  # names bound to bmcore modules in this file: `from bmcore import runs`, `from .. import data`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("bmcore")):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        hits.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}")
                    modules.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                modules.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("bmcore"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert len(hits) <= PRIVATE_CROSSINGS, hits


# Outside the two seams nothing compares against a kind's name: it asks the task or the modality.
KIND_COMPARISONS = (
    r"""(==|!=)\s*["'](image|text|mlm|masked_lm|single_label_classification|multi_label_classification|regression)["']""",
    r"""["'](image|text|mlm|masked_lm|single_label_classification|multi_label_classification|regression)["']\s*(==|!=)""",
    r"\b(SINGLE_LABEL|MULTI_LABEL|MASKED_LM|REGRESSION)\b",
    r"\bis_(image_model|multi_label|image)\b",
)


def _kind_comparisons() -> list[str]:
    import re

    pattern = re.compile("|".join(f"(?:{p})" for p in KIND_COMPARISONS))
    hits = []
    for path in [*_python_files(), *(ROOT / "bmcore" / "cli").glob("*.py")]:
        rel = path.relative_to(ROOT)
        if rel.parts[:2] in {("bmcore", "tasks"), ("bmcore", "modalities")} or rel.name == "problem_types.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code):
                hits.append(f"{rel}:{i}: {code.strip()}")
    return hits


# Issue 28 takes these to nothing: per file, the comparisons it still holds (none may be added). config.py's five are
# the pretraining config naming its own problem type (masked_lm), no comparison.
KIND_COMPARED = {"bmcore/config.py": 5}


def test_no_kind_is_compared_outside_its_seam():
    from collections import Counter

    hits = _kind_comparisons()
    found = Counter(h.split(":")[0] for h in hits)
    assert _over(dict(found), KIND_COMPARED, 0) == {}, "ask the task or the modality instead:\n" + "\n".join(hits)


# One JSON reader (bmcore.files.read_json, with the file named in its one-line error): what still reads JSON itself.
RAW_JSON_READS: dict[str, int] = {}


def test_json_files_are_read_by_the_one_reader():
    import re
    from collections import Counter

    pattern = re.compile(r"json\.loads\(.*read_text\(")
    found = Counter(str(p.relative_to(ROOT)) for p in [*(ROOT / "bmcore").rglob("*.py"), *(ROOT / "pages").glob("*.py")]
                    if p.name != "files.py" for line in p.read_text().splitlines() if pattern.search(line))
    assert _over(dict(found), RAW_JSON_READS, 0) == {}, "read it with bmcore.files.read_json"


def test_import_bmcore_loads_nothing_until_a_name_is_used():
    """``bmcore/__init__`` imports no submodule eagerly (that would make every lazy import in the engine pointless);
    every public name still resolves from its one home."""
    code = ("import sys, bmcore; before = sorted(m for m in sys.modules if m.startswith('bmcore'));"
            "[getattr(bmcore, n) for n in bmcore.__all__]; print(before)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bmcore']"


# Issue 28: bmcore's own modules are imported at the top of the file. Per file, the function-local imports of a bmcore
# module that stay, each with its reason on the line (none may be added): none today, since no engine module loads a
# heavy library at import (that is the next test's job).
LOCAL_OWN_IMPORTS: dict[str, int] = {}


def test_own_modules_are_imported_at_the_top():
    import ast
    from collections import Counter

    found: Counter[str] = Counter()
    for path in (ROOT / "bmcore").rglob("*.py"):
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    own = (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("bmcore"))
                           or isinstance(node, ast.Import) and any(a.name.split(".")[0] == "bmcore" for a in node.names))
                    found[str(path.relative_to(ROOT))] += bool(own)
    assert _over(+found, LOCAL_OWN_IMPORTS, 0) == {}, "import it at the top, or say why it is lazy"


HEAVY_LIBRARIES = ("torch", "transformers", "sklearn", "captum", "onnx")


def test_the_cli_and_the_jobs_load_no_heavy_library():
    """What makes the top-level imports above free: ``--help`` builds every command's parser and the job runner
    imports every job's module, and neither loads torch, transformers, scikit-learn, captum or onnx (those are
    imported inside the functions that use them)."""
    code = (f"import sys, bmcore.cli, bmcore.jobs; bmcore.cli.build_parser();"
            f"print([m for m in {HEAVY_LIBRARIES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metric_keys_have_one_set_of_names():
    """Averages are ``<average>_<metric>`` (``macro_f1``) everywhere: the old ``f1_macro`` style appears in
    bmcore/metrics.py alone, which upgrades files written with it (``upgrade_keys``)."""
    import re

    from bmcore.metrics import LEGACY_KEYS, SCORE_KEYS

    old = re.compile(r"\b(f1|precision|recall|roc_auc|pr_auc)_(macro|micro|weighted|samples)\b")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in [*_python_files(), *(ROOT / "bmcore").rglob("*.py")]
            if p != ROOT / "bmcore" / "metrics.py" for i, line in enumerate(p.read_text().splitlines(), 1)
            if old.search(line)]
    assert hits == [], "name it <average>_<metric> (bmcore.metrics):\n" + "\n".join(hits)
    assert not set(LEGACY_KEYS) & SCORE_KEYS and {"macro_f1", "samples_f1", "macro_roc_auc"} <= SCORE_KEYS


# argmax outside bmcore/tasks/ that is no decision about labels: splitting rows (stratify) and a speed probe's own check.
ARGMAX_ALLOWED = {"bmcore/data/stratify.py", "bmcore/bench/accuracy.py"}


def test_only_tasks_pick_the_top_class():
    """``argmax(`` assumes one label per row: outside bmcore/tasks/ code asks the task (``decide``, ``top_class``)."""
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in _python_files()
            if "tasks" not in p.relative_to(ROOT).parts and str(p.relative_to(ROOT)) not in ARGMAX_ALLOWED
            for i, line in enumerate(p.read_text().splitlines(), 1) if "argmax(" in line.split("#")[0]]
    assert hits == [], "ask the task instead:\n" + "\n".join(hits)


# One name, one home: a public module-level name (function, class, CONSTANT) defined in two engine modules reads as
# one thing with two meanings. Allowed: the names every module of a kind defines by convention, and the names of an
# evaluation view that each task's view defines once for its kind: the classification view (bmcore/compare.py,
# bmcore/report/evaluation.py, bmcore/report/examples.py, drawn by pages/_evaluation.py) and the regression view
# (bmcore/report/regression.py, drawn by pages/_regression.py) are picked per task through the sections the task
# names (pages/_sections.py), never both at once. Any other name defined twice gets its own name.
PER_MODULE_CONVENTIONS = {"TASK", "MODALITY", "register", "SUMMARY_KEYS", "AUTO_IMBALANCE", "AUTO_WEIGHTS"}
PER_TASK_VIEW_NAMES = {"compare_runs", "compare_tiles", "SORTS", "EXAMPLE_COLUMNS"}


def test_a_public_name_has_one_home():
    import ast
    from collections import defaultdict

    homes = defaultdict(list)
    for path in (ROOT / "bmcore").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name) and t.id.isupper()]
            for name in names:
                if not name.startswith("_"):
                    homes[name].append(str(path.relative_to(ROOT)))
    twice = {n: h for n, h in homes.items() if len(h) > 1 and n not in PER_MODULE_CONVENTIONS | PER_TASK_VIEW_NAMES}
    assert twice == {}, "give each its own name, or import it from its one home"
