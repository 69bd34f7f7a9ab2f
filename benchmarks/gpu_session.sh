#!/usr/bin/env bash
# The GPU measurements of one short lease, in one call: the CUDA tests, then trials per
# minute for resnet18 on PneumoniaMNIST at 28 and 224 px (`scaling.py`), then the
# bring-your-own-model benchmark while time is left. Each step has its own time limit and
# writes its output under $OUT (or ./gpu-out), so one failing step costs only itself.
#
#   DATA=.devdata bash benchmarks/gpu_session.sh      # DATA: where pneumoniamnist.npz lies
set -u
OUT=$(realpath -m "${OUT:-gpu-out}")
DATA=$(realpath -m "${DATA:-../shared/data}")
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/medslim-cache
step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s) $(date +%T)"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "   exit $? $(date +%T)"
    tail -n 12 "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
step cuda-tests 60 python3 -m pytest -q tests/objectives/test_precision.py \
    tests/objectives/test_split.py
step scaling-28 190 python3 benchmarks/scaling.py --dataset "$DATA/pneumoniamnist.npz" \
    --model resnet18 --trials 48 --teacher-epochs 5 --workers 1,4,8 --repeats 1 \
    --out "$OUT/scaling-28.json"
step scaling-224 140 python3 benchmarks/scaling.py --dataset "$DATA/pneumoniamnist.npz" \
    --model resnet18 --size 224 --trials 8 --teacher-epochs 2 --workers 1,4 --repeats 1 \
    --out "$OUT/scaling-224.json"
(cd benchmarks && step own-model 130 python3 own_model.py --models resnet18 \
    --datasets pneumoniamnist --trials 40 --seeds 0 --data-dir "$DATA" \
    --out "$OUT/own_model.json")
