#!/usr/bin/env bash
# Every GPU figure the docs owe, on a machine with CUDA GPUs, in under 8 minutes:
#
#   1. training throughput, float32 vs bf16 (train.precision=bfloat16), 2-D and 3-D
#      (benchmarks/bench_train.py: one `structreg train` process per row);
#   2. DDP scaling on the GPUs present: the same global batch in K = all GPUs processes
#      through torchrun (`structreg train --nproc K`), as a row of the same table;
#   3. 3-D registration time per volume, ours vs VoxelMorph-2, at 2 mm (80x96x80) and
#      1 mm (160x192x224), against the goal <= 0.2 s per 1 mm volume
#      (benchmarks/bench_3d.py --device cuda).
#
# Results go to one folder (default gpu-results-<UTC time>): train.md, bench_3d.md,
# environment.txt (nvidia-smi, torch, CUDA) and summary.md (the goal checks).
# Without a usable CUDA GPU it stops at once with one line and exit status 1.
#
#   bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
out="${1:-gpu-results-$(date -u +%Y%m%dT%H%M%SZ)}"

fail() { echo "gpu.sh: error: $*" >&2; exit 1; }

command -v nvidia-smi >/dev/null 2>&1 || fail "no NVIDIA GPU here (nvidia-smi not found)"
gpus="$("$python" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)"
[ "$gpus" -ge 1 ] 2>/dev/null || fail "PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$root"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "host: $(hostname), $(nproc) CPU cores"
  "$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
      "GPUs", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} > "$out/environment.txt"
cat "$out/environment.txt"

# at most ~3.5 min of training rows (5 rows per dimension, 40 steps each), then ~2.5 min
# of 3-D registration; `timeout` keeps each part inside its share of the 8 minutes
nproc_rows=$(( gpus > 1 ? gpus : 1 ))
echo "== training throughput (float32 / bf16, ${nproc_rows} process(es) for the DDP row)"
status=0
timeout 240 "$python" benchmarks/bench_train.py --device cuda --steps 40 --warmup 5 \
  --nproc "$nproc_rows" --dims 2 3 | tee "$out/train.md" || status=$?
[ "$status" -eq 0 ] || echo "bench_train.py stopped with status $status (see $out/train.md)" \
  | tee -a "$out/train.md"

echo "== 3-D registration time per volume (ours vs VoxelMorph-2, 2 mm and 1 mm)"
status3=0
timeout 180 "$python" benchmarks/bench_3d.py --device cuda --repeats 10 --no-ants \
  | tee "$out/bench_3d.md" || status3=$?
[ "$status3" -eq 0 ] || echo "bench_3d.py stopped with status $status3" | tee -a "$out/bench_3d.md"

{
  echo "# GPU figures ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  head -n 3 "$out/environment.txt" | sed 's/^/    /'
  echo
  echo "## Training (benchmarks/bench_train.py --device cuda --steps 40 --nproc $nproc_rows)"
  echo
  grep '^|' "$out/train.md" || echo "(no rows: see train.md)"
  if [ "$gpus" -eq 1 ]; then
    echo
    echo "One GPU: the DDP row runs 1 process; scaling needs a machine with several GPUs."
  fi
  echo
  echo "## 3-D registration (benchmarks/bench_3d.py --device cuda --repeats 10)"
  echo
  grep '^|' "$out/bench_3d.md" || echo "(no rows: see bench_3d.md)"
  grep -i 'goal' "$out/bench_3d.md" || true
  echo
  echo "Wall time of this script: $(( $(date +%s) - start )) s"
} > "$out/summary.md"
echo "results in $out (summary.md)"
[ "$status" -eq 0 ] && [ "$status3" -eq 0 ]
