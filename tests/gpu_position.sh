#!/usr/bin/env bash
# DOAM's plug point in the fast detector, at equal optimiser steps (a lent GPU machine; ~5 min):
# DOAM at the stem (default) vs DOAM at the input, the default recipe with batch 32,
# two runs side by side (the GPU is fed by CPU data workers; 16 cores give each run 7).
# Writes $OUT/curve_{stem,input}.json. Accuracy per step does not depend on the device;
# the cost side (latency, FLOPs) is measured on the CPU by bench inference / model info.
OUT=${OUT:-/tmp/gpu-position}
source tests/gpu_env.sh
D=/tmp/gpu-data
$PY main.py synth --out $D/train --train 2000 --test 0 --seed 101 --workers 15 >/dev/null 2>"$OUT/synth.err"
$PY main.py synth --out $D/heldout --train 0 --test 150 --seed 909 --workers 15 >/dev/null 2>>"$OUT/synth.err"
run() {  # name, attention, extra options
  $PY main.py train --data $D/train --out /tmp/pos-$1 --arch fast --attention $2 --strategy hard \
    --pool-capacity 16 --pool-period 50 --crop 256 --negative-share 0.2 --lr 4e-3 --batch-size 32 \
    --iters ${ITERS:-500} --curve-every 1 --curve-data $D/heldout --curve-max-images 150 --workers ${WORKERS:-7} --seed 0 \
    --device cuda "${@:3}" >/tmp/pos-$1.log 2>&1
  cp /tmp/pos-$1/curve.json "$OUT/curve_$1.json"; tail -c 1500 /tmp/pos-$1.log >"$OUT/log_$1.txt"
}
run stem doam & run input doam --model-option 'position="input"' &
wait
