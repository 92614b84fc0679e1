#!/usr/bin/env bash
# The GPU check, one script: benchmarks/gpu_check.sh OUT_DIR [--dry-run]
#
# On one CUDA device, in under 5 minutes, writing everything under OUT_DIR:
#   1. env        torch, the device, which selective-scan path runs (hippo.scan.resolve_mode)
#                 and whether mamba_ssm is installed                      -> env.txt
#   2. nightly    `python -m bench nightly --profile smoke --device cuda` -> nightly/
#   3. throughput the throughput suite for every registered model at its quick size
#                 (samples/s, steps/s, peak memory)                       -> throughput/
#   4. pytest     the tests marked gpu (tests/test_gpu_kernels.py: hippo's CUDA fallbacks, AMP, the
#                 mamba_ssm scan when installed)                          -> pytest-gpu.xml
#   5. lti        LegT memory, N = 256, L = 4096, float32 and float64: the FFT path against
#                 the recurrent one (time and agreement)                  -> lti.json
# then prints summary.md (each step's status, time and log tail) and exits 1 if a step failed.
#
# --dry-run: the same steps on the CPU at the smallest sizes (the throughput suite at its smoke
# size, the LTI comparison at N = 64, L = 512), so that CI checks the script without a GPU.
# Data: $BENCH_DATA_DIR (CharacterTrajectories and MNIST must be there; nothing is downloaded
# when it is set). Run from anywhere; the repository root is found from this file.
set -uo pipefail

usage="usage: benchmarks/gpu_check.sh OUT_DIR [--dry-run]"
[[ $# -ge 1 && $# -le 2 ]] || { echo "$usage" >&2; exit 2; }
OUT=$1
DRY=0
if [[ $# -eq 2 ]]; then
    [[ $2 == --dry-run ]] || { echo "$usage (got $2)" >&2; exit 2; }
    DRY=1
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
export BENCH_CACHE_DIR="${BENCH_CACHE_DIR:-$OUT/cache}"

# Time limits in seconds (300 in all on the GPU); a dry run on a busy CI machine gets 3x.
if [[ $DRY -eq 1 ]]; then
    DEVICE=cpu THROUGHPUT_PROFILE=smoke LTI_N=64 LTI_L=512 SLACK=3
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
    DEVICE=cuda THROUGHPUT_PROFILE=quick LTI_N=256 LTI_L=4096 SLACK=1
    if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check: no CUDA device (torch.cuda.is_available() is False); use --dry-run" >&2
        exit 2
    fi
fi

SUMMARY="$OUT/summary.md"
FAILED=0
{
    echo "# GPU check ($([[ $DRY -eq 1 ]] && echo "dry run on CPU" || echo "CUDA"))"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "| step | status | seconds | log |"
    echo "|---|---|---|---|"
} > "$SUMMARY"

# step NAME LIMIT_S COMMAND...: run it with a time limit, its output in OUT/NAME.log
step() {
    local name=$1 limit=$(($2 * SLACK))
    shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s): $*"
    timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - start)) status=ok
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        status="timed out"
    elif [[ $rc -ne 0 ]]; then
        status="failed (exit $rc)"
    fi
    [[ $status == ok ]] || FAILED=1
    echo "   $status in ${took}s"
    echo "| $name | $status | $took | $name.log |" >> "$SUMMARY"
}

step env 30 python - "$DEVICE" <<'EOF'
import importlib.util
import sys

import torch

from hippo.scan import resolve_mode

device = torch.device(sys.argv[1])
print("torch", torch.__version__, "cuda", torch.version.cuda)
if device.type == "cuda":
    print("device", torch.cuda.get_device_name(device))
x = torch.zeros(1, 1, 1, device=device)
print("selective scan path (float32):", resolve_mode("auto", x))
print("mamba_ssm installed:", importlib.util.find_spec("mamba_ssm") is not None)
EOF
cp "$OUT/env.log" "$OUT/env.txt"

step nightly 110 python -m bench nightly --profile smoke --device "$DEVICE" \
    --results-dir "$OUT/nightly"

MODELS=$(python -c "from bench.models import list_models; print(','.join(list_models()))")
step throughput 90 python -m bench run --suite throughput --profile "$THROUGHPUT_PROFILE" \
    --models "$MODELS" --seeds 0 --device "$DEVICE" --results-dir "$OUT/throughput"

step pytest 50 python -m pytest tests -m gpu -q -rs -p no:cacheprovider \
    --junitxml "$OUT/pytest-gpu.xml"

step lti 20 python - "$DEVICE" "$LTI_N" "$LTI_L" "$OUT/lti.json" <<'EOF'
import json
import statistics
import sys
import time

import torch

from hippo import project

device, N, L, out = torch.device(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        y = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ts.append(time.perf_counter() - start)
    return y, statistics.median(ts[1:])  # [0]: warm-up (kernel built, caches filled)


rows = []
for dtype in (torch.float64, torch.float32):
    x = torch.randn(1, L, dtype=dtype, device=device)
    fft, t_fft = timed(lambda: project(x, "legt", N, dt=1.0 / L, mode="fft"), 6)
    rec, t_rec = timed(lambda: project(x, "legt", N, dt=1.0 / L, mode="recurrent"), 3)
    err = ((fft - rec).abs().max() / rec.abs().max()).item()
    rows.append({"dtype": str(dtype), "N": N, "L": L, "fft_ms": 1e3 * t_fft,
                 "recurrent_ms": 1e3 * t_rec, "speedup": t_rec / t_fft, "max_rel_diff": err})
    print(rows[-1])
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    if not err < tol:
        sys.exit(f"LTI paths disagree in {dtype}: {err:.3g} (tolerance {tol})")
with open(out, "w") as f:
    json.dump(rows, f, indent=2)
EOF

{
    echo
    for name in env nightly throughput pytest lti; do
        echo "## $name"
        echo
        echo '```'
        tail -n 25 "$OUT/$name.log" 2>/dev/null
        echo '```'
        echo
    done
} >> "$SUMMARY"
cat "$SUMMARY"
exit $FAILED
