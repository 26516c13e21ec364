#!/usr/bin/env bash
# Check the Dockerfile's steps without a Docker engine: the same Python, the same pip line, in a clean
# virtualenv; the app copied as .dockerignore leaves it; streamlit started as the CMD starts it, with the
# workspace in a temporary folder; then the health check and the root page. Slow (it installs torch):
# run by hand, not in the test suite.
#   bash scripts/check_docker_steps.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${1:-/tmp/dockervenv}
PY=${PYTHON:-python3.11}   # the Dockerfile's base image is python:3.11-slim
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

echo "== venv $VENV ($($PY --version))"
rm -rf "$VENV"
$PY -m venv "$VENV"
# RUN pip install torch==2.13.0 -r requirements.txt
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0 -r requirements.txt

# COPY . .  (less what .dockerignore leaves out)
mkdir "$TMP/app" "$TMP/data"
tar -C "$ROOT" --exclude-vcs --exclude=.ci --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
    --exclude=.ruff_cache --exclude=workspace --exclude=test-artifacts --exclude=bench --exclude=tests --exclude=docs \
    -cf - . | tar -C "$TMP/app" -xf -

# ENV ... ; CMD streamlit run app.py (on a free port here, 8501 in the image)
PORT=$("$VENV/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cd "$TMP/app"
env -i PATH="$VENV/bin:/usr/bin:/bin" HOME="$TMP" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
    BMCORE_WORKSPACE="$TMP/data/workspace" HF_HOME="$TMP/data/hf-cache" HF_HUB_OFFLINE=1 \
    "$VENV/bin/streamlit" run app.py --server.port "$PORT" --server.address 127.0.0.1 --server.headless true \
    >"$TMP/streamlit.log" 2>&1 &
PID=$!

echo "== waiting for http://127.0.0.1:$PORT/_stcore/health"
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/_stcore/health" >"$TMP/health" 2>/dev/null; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$TMP/streamlit.log"; echo "FAIL: streamlit exited"; exit 1; }
  sleep 1
done
echo "health: $(cat "$TMP/health")"
[ "$(cat "$TMP/health")" = ok ] || { cat "$TMP/streamlit.log"; echo "FAIL: no health"; exit 1; }
curl -fsS "http://127.0.0.1:$PORT/" -o "$TMP/index.html"
grep -q '<div id="root">' "$TMP/index.html" || { echo "FAIL: the root page is not the Streamlit app"; exit 1; }
echo "root page: $(wc -c <"$TMP/index.html") bytes, Streamlit's app shell"
# The served page is only Streamlit's shell; run the app script itself once, in the same venv and workspace.
env -i PATH="$VENV/bin:/usr/bin:/bin" HOME="$TMP" BMCORE_WORKSPACE="$TMP/data/workspace" HF_HUB_OFFLINE=1 \
    "$VENV/bin/python" -c "
import onnxruntime, streamlit, torch
from streamlit.testing.v1 import AppTest
at = AppTest.from_file('app.py', default_timeout=300).run()
assert not at.exception, at.exception
print('app.py ran: title', repr(at.title[0].value), '| torch', torch.__version__, '| onnxruntime', onnxruntime.__version__,
      '| streamlit', streamlit.__version__)"
ls "$TMP/data/workspace" >/dev/null && echo "workspace created on the volume path: $TMP/data/workspace"
echo "OK: the Dockerfile's steps work in a clean virtualenv"
