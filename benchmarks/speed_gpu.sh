#!/bin/sh
# The generation-speed figures of issue 18 on one GPU, in one go (about 7-8 min on an H200):
#   sh benchmarks/speed_gpu.sh OUT_DIR
# (on the device machine: `sh benchmarks/gpu_deps.sh install` in a call before, then PYTHONPATH=.site:.)
# 1. the streaming cascade at 256 px with the cheaper super-resolution step, 10 s of audio
#    (stage 2 at 128 px is its first stage: its frames/s, FLOPs and memory are in the row);
# 2. today's super-resolution step (superres_base.yaml), 1.2 s (its windows cost ~10 s each);
# 3. stage 2 with sampling.compile (torch.compile, CUDA graphs), 1 s (compiling is in warmup_s).
# Each writes OUT_DIR/speed_*.json as rows finish and prints the markdown table.
set -e
out=${1:-.}
py=${PYTHON:-python}
$py -m benchmarks.speed --device cuda --seconds 10 --only "256 px, superres_fast" --json "$out/speed_fast_10s.json"
$py -m benchmarks.speed --device cuda --seconds 1.2 --only "256 px, superres_base" --json "$out/speed_base_1.2s.json"
$py -m benchmarks.speed --device cuda --seconds 1 --only "128 px" --set sampling.compile=true \
    --json "$out/speed_compile_1s.json"
