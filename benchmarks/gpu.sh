#!/usr/bin/env bash
# The GPU checks, in one short run (under 8 minutes on one GPU): the `cuda`-marked tests, then the
# GPU rows of the benchmarks, each against its reference in the same run:
#   - COCO bbox in the loop on CUDA tensors (torch kernels) vs the compiled CPU engine and hotcoco;
#   - pairwise box IoU on CUDA vs the broadcasting formula and the device's copy bandwidth
#     (the bound set by writing the output);
#   - mask IoU / segm matching on CUDA (the matmul path) vs the CPU packed-bit path.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]    (logs go to OUT_DIR, default out/gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/gpu}"
mkdir -p "$out"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
    | tee "$out/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$out/device.txt" || true
export PYTHONUNBUFFERED=1
timeout 240 python3 -m pytest -q -m cuda tests 2>&1 | tee "$out/cuda_tests.log"
timeout 120 python3 benchmarks/coco_bbox.py --device cuda --repeat 3 --no-pycocotools 2>&1 | tee "$out/coco_bbox_cuda.log"
timeout 60 python3 benchmarks/box_iou.py --device cuda 2>&1 | tee "$out/box_iou_cuda.log"
timeout 90 python3 benchmarks/coco_segm.py --device cuda 2>&1 | tee "$out/coco_segm_cuda.log" || \
    echo "coco_segm: no --device option or it failed; see the log" | tee -a "$out/coco_segm_cuda.log"
