#!/usr/bin/env bash
# The one GPU suite: every GPU check and benchmark of the project in one run (≤ 8 minutes on one GPU).
#
#   bash benchmarks/gpu_suite.sh            # results under benchmarks/results/ (or $OUT when set)
#
# Steps, each under its own time limit, each logged; a failing step does not stop the others:
#   1. the gpu-marked tests (python -m pytest -m gpu);
#   2. fastpolicy bench --device gpu (decode, policy, transform on CUDA batches, stage, host, the
#      ResNet-50 step fed vs pre-staged);
#   3. benchmarks/policy_stage.py (the fused kernels beside DALI's per-sample select);
#   4. benchmarks/profile_step.py (a short torch.profiler trace of the fed training step).
# Every JSON names the machine (fastpolicy.bench.record); gpu_suite.json sums the steps up
# (status, seconds, device, date, command). On a machine without a CUDA GPU it says so in one
# line and exits 0. On the device machine run DALI's devkit first (it installs into /tmp/site).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_suite: no CUDA GPU here (torch sees none); nothing run"
  exit 0
fi

out=${OUT:-benchmarks/results}
mkdir -p "$out"
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log="$out/gpu_suite.log"
: > "$log"
steps=()

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2 started status
  shift 2
  started=$(date +%s.%N)
  echo "=== $name: $* (limit ${limit} s)" | tee -a "$log"
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  status=$?
  local seconds
  seconds=$(python -c "import time; print(round(time.time() - $started, 1))")
  echo "=== $name: exit $status after $seconds s" | tee -a "$log"
  steps+=("{\"step\": \"$name\", \"exit\": $status, \"seconds\": $seconds, \"command\": \"$*\"}")
}

step gpu_tests 150 python -m pytest -m gpu -q -p no:cacheprovider
step bench 180 python -m fastpolicy bench --device gpu --scenarios decode policy transform stage host training --out "$out/bench_gpu.json"
step policy_stage 90 python benchmarks/policy_stage.py --out "$out/policy_stage_gpu.json"
step profile_step 60 python benchmarks/profile_step.py --device gpu --out "$out/profile_step_gpu.json"

joined=$(IFS=,; echo "${steps[*]}")
python - "$out/gpu_suite.json" "[$joined]" <<'EOF'
import json, sys
from fastpolicy.bench import record
path, steps = sys.argv[1], json.loads(sys.argv[2])
result = record.write("gpu_suite", {}, steps, path, note="exit 124/137: the step ran past its limit; details in gpu_suite.log")
result["command"] = "bash benchmarks/gpu_suite.sh"
with open(path, "w") as handle:
    json.dump(result, handle, indent=2)
EOF
echo "gpu_suite: done; results in $out"
