#!/bin/sh
# Issue 18's "quality of the few-step student vs the 25-step teacher on the benchmark", in one go on
# one GPU (written 2026-12-02 on CPU, smoke-run there with tiny settings; not yet run on a GPU):
#   sh benchmarks/distill_gpu.sh OUT_DIR
# (on the device machine: `sh benchmarks/gpu_deps.sh install` in a call before, then PYTHONPATH=.site:.)
# 1. progressive distillation of the zoo's stage 2 (vlogger-corpus-64, 64 px): 8 -> 4 -> 2 -> 1 DDIM
#    steps, each round from the last student, on the shards it was trained on (no corpus-val person);
# 2. corpus-val rows, all with the zoo's stage 1, seed 0: the teacher at 25, 8, 4 and 2 steps (the
#    undistilled sampler cut short) and each student at its own steps, in parallel on the one GPU;
#    each row scored on the CPUs (`--workers`), all added to OUT_DIR/leaderboard.json;
# 3. prints the board (markdown) and copies each row's results.json to OUT_DIR/results_NAME.json.
# Needs (carried beside the working tree, ~40 MB): data/zoo/clips_shards (the teacher's shards) and
# data/bench/corpus-val/items (prepared items: `vlogger benchmark baselines` once writes them).
# Settings by environment: DISTILL_STEPS (per round, default 1500), BATCH (16), MANIFEST, ITEMS,
# SHARDS, VAL_IDS (its people kept for validation), ROUNDS ("4 2 1"), TEACHER_STEPS ("25 8 4 2"), DEVICE (cuda), WORKERS (2 per row).
set -e
out=${1:-.}
py=${PYTHON:-python}
zoo=vlogger/zoo/models/vlogger-corpus-64
manifest=${MANIFEST:-configs/benchmarks/corpus-val.yaml}
items=${ITEMS:-data/bench/corpus-val/items}
shards=${SHARDS:-data/zoo/clips_shards}
device=${DEVICE:-cuda}
accel=$([ "$device" = cpu ] && echo cpu || echo gpu)
mkdir -p "$out/runs"

teacher=$zoo/video.safetensors
for steps in ${ROUNDS:-4 2 1}; do
  name=student-$steps
  ckpt=$out/runs/$name/checkpoints/last.ckpt
  if [ ! -f "$ckpt" ]; then
    $py -m vlogger.cli train video --set phase=clip --set "model.parts=[face,body]" \
      --set "data.shards=[$shards]" --set "data.val_identities=${VAL_IDS:-[retalking_face4]}" \
      --set "data.batch_size=${BATCH:-16}" \
      --set "distill={teacher: $teacher, steps: $steps}" --set "trainer.max_steps=${DISTILL_STEPS:-1500}" \
      --set trainer.accelerator=$accel --set trainer.val_every_steps=500 --set trainer.limit_val_batches=2 \
      --set optim.lr=1.0e-4 --set optim.warmup_steps=50 --set optim.ema_decay=0.99 \
      --set logging.dir="$out/runs" --set logging.name=$name --set logging.logger=csv \
      --set logging.media_every_steps=100000 > "$out/train_$name.log" 2>&1
  fi
  teacher=$ckpt
done

row() {  # NAME VIDEO_CHECKPOINT STEPS
  $py -m vlogger.cli benchmark run "$manifest" --out "$out/$1" --items-dir "$items" --name "$1" \
    --motion-checkpoint $zoo/motion.safetensors --video-checkpoint "$2" --steps "$3" --device "$device" \
    --workers "${WORKERS:-2}" --leaderboard "$out/board_$1.json" > "$out/bench_$1.log" 2>&1
}
for s in ${TEACHER_STEPS:-25 8 4 2}; do row teacher-$s $zoo/video.safetensors "$s" & done
for s in ${ROUNDS:-4 2 1}; do row student-$s "$out/runs/student-$s/checkpoints/last.ckpt" "$s" & done
wait
# one board of all rows (each run wrote its own file: no two processes write one board)
$py - "$out" <<'EOF'
import json, shutil, sys
from pathlib import Path
from vlogger.evaluation import leaderboard as lb
out = Path(sys.argv[1])
for part in sorted(out.glob("board_*.json")):
    for row in lb.load(part):
        lb.add(out / "leaderboard.json", row)
for res in sorted(out.glob("*/results.json")):
    shutil.copy(res, out / f"results_{res.parent.name}.json")
print(lb.markdown(lb.load(out / "leaderboard.json")))
EOF
