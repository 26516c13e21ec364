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
# Two pytest-xdist workers by default (BMCORE_TEST_WORKERS=0: serial). A module's tests stay together on one worker and
# the browser tests share one (tests/conftest.py groups them). Each worker's torch uses one thread (OMP_NUM_THREADS=1,
# inherited by the jobs and servers it starts): two workers of two threads each on 2 cores fought over them, and the
# suite took as long as serially (29 min 43 s against 29 min 5 s).
workers="${BMCORE_TEST_WORKERS:-2}"
if [ "$workers" != 0 ]; then export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"; fi
exec python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadgroup "$@"
