#!/usr/bin/env bash
# One command for a GPU machine (issue 26): step time and peak memory of ABN / SAC / DACS / MIC /
# UniMatch at the 512x512 GTA5 -> Cityscapes settings (DeepLab-v2 R101, MiT-B5) in fp32 / bf16 /
# fp16, the reference SAC step (DA_SAC=/path/to/da-sac), and the data pipeline's images/s per
# loader worker against each step's rate; under 8 minutes on one H100-class GPU.
#
#   bash benchmarks/gpu_check.sh                # writes benchmarks/results/gpu_check_<date>.txt
#   DA_SAC=/path/to/da-sac bash benchmarks/gpu_check.sh --data-root /data   # real frames
#   bash benchmarks/gpu_check.sh --reduced      # the CPU test's mode (tiny, one step)
#
# Extra arguments go to benchmarks/gpu_check.py. Commit the output file with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/gpu_check_$(date -u +%Y%m%d-%H%M).txt}
mkdir -p "$(dirname "$OUT")"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT"
echo "written: $OUT"
