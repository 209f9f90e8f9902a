#!/usr/bin/env bash
# The GPU checks, as one short script for a lent GPU machine (see the README's "GPU" section).
# Usage: OUT=/some/dir bash tests/gpu_check.sh   (about 6 minutes on one H200)
# Writes into $OUT: env.txt, test_cuda.log, bench_inference_cuda.json/.err,
# bench_training_cuda.json/.err, train_gpu.log and curve_gpu.json.
# Each step has its own time limit so one hang does not cost the others.
OUT=${OUT:-/tmp/gpu-check}
source tests/gpu_env.sh

{ nvidia-smi -L; $PY -c "import torch, torchvision, sys; print(sys.version); print('torch', torch.__version__,
'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"; } \
  >"$OUT/env.txt" 2>&1

# 1. The CUDA code paths agree with the CPU (inference, each detector's training step, the trainer, nccl).
timeout 180 $PY -m pytest tests/test_cuda.py -q -p no:cacheprovider -o addopts="" >"$OUT/test_cuda.log" 2>&1
echo "test_cuda rc=$?" >>"$OUT/env.txt"

# 2. Inference latency per arch x attention on the GPU (fp16 autocast, batch throughput).
timeout 120 $PY main.py bench inference --inference-archs fast,ssd,yolov3,fcos --inference-attentions none,doam \
  --inference-repeats 30 >"$OUT/bench_inference_cuda.json" 2>"$OUT/bench_inference_cuda.err"
echo "bench inference rc=$?" >>"$OUT/env.txt"

# 3. Training throughput per arch on the GPU.
timeout 90 $PY main.py bench training --training-archs fast-none,fast-doam,ssd-doam,yolov3-doam,fcos-doam \
  --training-steps 20 --training-batch 16 >"$OUT/bench_training_cuda.json" 2>"$OUT/bench_training_cuda.err"
echo "bench training rc=$?" >>"$OUT/env.txt"

# 4. The default recipe's learning curve on the GPU: 3 minutes of training, a curve point every minute.
D=/tmp/gpu-data
timeout 60 $PY main.py synth --out $D/train --train 2000 --test 0 --seed 101 --workers 14 >/dev/null 2>"$OUT/synth.err"
timeout 30 $PY main.py synth --out $D/heldout --train 0 --test 150 --seed 909 --workers 14 >/dev/null 2>>"$OUT/synth.err"
timeout 240 $PY main.py train --data $D/train --out /tmp/gpu-run --arch fast --attention doam --strategy hard \
  --pool-capacity 16 --pool-period 50 --crop 256 --negative-share 0.2 --lr 4e-3 --batch-size 32 \
  --time-budget 3 --curve-every 1 --curve-data $D/heldout --curve-max-images 150 --workers 8 --seed 0 \
  --device cuda >"$OUT/train_gpu.log" 2>&1
echo "train rc=$?" >>"$OUT/env.txt"
cp /tmp/gpu-run/curve.json "$OUT/curve_gpu.json" 2>/dev/null
tail -c 4000 /tmp/gpu-run/steps.csv >"$OUT/steps_tail.csv" 2>/dev/null
cat "$OUT/env.txt"
