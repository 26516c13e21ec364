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
