#!/usr/bin/env bash
# Install what the tests need (Python packages and Debian's Chromium for the browser tests), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check torch==2.13.0 -r requirements-test.txt
# Debian packages: Chromium for the browser tests, dataset-fashion-mnist (packages.txt) for builtin:fashion-mnist.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; \
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# BMCORE_TEST_WORKERS=2 runs two pytest-xdist workers (a module's tests stay together on one, the browser tests share
# one: tests/conftest.py groups them). Off by default: on 2 cores it took 29 min 43 s for 51 CPU-minutes of work (the
# real fine-tunes keep both cores busy either way, so little is gained) and a speed-comparing test flaked under it.
exec python -m pytest -q -p no:cacheprovider -n "${BMCORE_TEST_WORKERS:-0}" --dist loadgroup "$@"
