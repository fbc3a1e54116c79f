#!/usr/bin/env bash
# A refactor's witness: run the same seeded pipeline on two checkouts and compare with
# benchmarks/same_output.py. Synthetic sample -> shards -> stage 1 (20 steps) -> stage 2 (10 steps)
# -> photo + audio generation -> reconstruction from a clip, all seeded.
#   benchmarks/same_output.sh CHECKOUT OUT [MOTION_CKPT VIDEO_CKPT]   (checkpoints given: generation only)
#   python -m benchmarks.same_output OUT_BEFORE OUT_AFTER
# Runs CHECKOUT's code with this checkout's .venv (VENV=... to choose another).
set -euo pipefail
W=$(cd "$1" && pwd); OUT=$(mkdir -p "$2" && cd "$2" && pwd); V=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}/bin
cd "$W"; export PYTHONPATH=$W
if [ $# -ge 4 ]; then M=$3; VID=$4; SAMPLE=$(dirname "$M")/../../../sample; else
  SAMPLE=$OUT/sample
  $V/vlogger make-sample --out $SAMPLE --clips 3 --seconds 4
  $V/vlogger preprocess --input $SAMPLE --out $OUT/shards --workers 1
  common="--set data.shards=$OUT/shards --set data.val_identities=[] --set logging.dir=$OUT/runs --set logging.logger=csv --set logging.media_every_steps=0"
  $V/vlogger train motion $common --set data.max_sync_offset=null --set trainer.max_steps=20 --set trainer.val_every_steps=20
  $V/vlogger train video $common --set phase=single --set trainer.max_steps=10 --set trainer.val_every_steps=10
  M=$OUT/runs/motion-tiny/checkpoints/last.ckpt; VID=$OUT/runs/video-tiny/checkpoints/last.ckpt
fi
$V/vlogger generate --image $SAMPLE/astronaut_002.mp4 --audio $SAMPLE/astronaut_002.mp4 --steps 5 --seed 3 \
  --motion-checkpoint $M --video-checkpoint $VID --out $OUT/gen
$V/vlogger generate --motion-from $SAMPLE/astronaut_001.mp4 --start 1 --steps 5 --seed 3 --video-checkpoint $VID --out $OUT/recon
