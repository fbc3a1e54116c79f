"""Stage 2 on the real clips, on CPU: training time of both phases and super-resolution, then
reconstruction of a held-out part of a training identity against ground truth and the
warped-reference baseline, outpainting seams, and a photo + speech generation.

1. Trains the tiny configs on ../shared/data/clips (preprocessed into data/real_shards; the
   last 4 s of every edtalk_pose_source2 clip and two identities held out, see
   configs/train/shared_clips.yaml): phase `single`, phase `clip` from its EMA weights, and
   the 64 -> 128 super-resolution model, each timed (skipped when its checkpoint exists); then
   both phases again for longer (beyond the 30-minute budget), each from the one before.
2. Reconstruction (`vlogger generate --motion-from`): the edtalk clip's held-out tail driven by
   its own tracked motion, the clip's first frame as reference; `vlogger evaluate` scores the
   generated video and the warped-reference baseline against the ground truth (PSNR, SSIM,
   identity, jitter, ...). Seams: mean absolute frame-to-frame change at the outpainting
   windows' borders vs. inside them, for the generated video and the ground truth.
3. `vlogger generate` from a photo in ../shared/data/images and a recording in
   ../shared/data/audio with the tiny stage-1 model (trained first if missing), timed.

    python -m benchmarks.stage2 [--runs runs] [--out data/bench_stage2] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import block_interval, machine, publish
from vlogger.core.config import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "data"
SHARDS = REPO_ROOT / "data" / "real_shards"
DATA = "configs/train/shared_clips.yaml"
RECON_CLIP, RECON_START = "edtalk_pose_source2", 16.0  # its first 20-s clip; the last 4 s are held out
PHOTO, SPEECH = "portrait_hallo6.jpg", "retalking_audio1.wav"
TRAINED = ("single", "clip", "superres", "single-long", "clip-long")  # runs/stage2-NAME


def vlogger(*args: str) -> float:
    """Run a `vlogger` command as a user would; its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vlogger.cli", *args], check=True)
    return time.perf_counter() - t


def train(runs: Path, stage: str, name: str, configs: list[str], sets: list[str]) -> tuple[Path, float]:
    """last.ckpt of run `name`, trained now and timed unless it exists (then the time recorded
    beside it when it was trained)."""
    ckpt, timing = runs / name / "checkpoints" / "last.ckpt", runs / name / "bench_seconds.json"
    if not ckpt.is_file():
        sets = [*sets, f"logging.dir={runs}", f"logging.name={name}", "logging.logger=csv"]
        configs_args = [a for c in configs for a in ("--config", c)]
        seconds = vlogger("train", stage, *configs_args, *[a for s in sets for a in ("--set", s)])
        timing.write_text(json.dumps({"seconds": seconds}))
    return ckpt, json.loads(timing.read_text())["seconds"]


def seams(video: np.ndarray, window: int, overlap: int) -> dict[str, float]:
    """Mean |frame t - frame t-1| (uint8 scale) where a new outpainting window's first
    generated frame follows the frames it was conditioned on, vs. every other transition."""
    from vlogger.models.sampling import window_starts

    diff = np.abs(np.diff(video.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # diff[t-1]: t-1 -> t
    borders = {s + overlap for s in window_starts(len(video), window, overlap)[1:] if s + overlap < len(video)}
    at = np.array([diff[t - 1] for t in sorted(borders)])
    inside = np.array([d for t, d in enumerate(diff, 1) if t not in borders])
    return {"border": float(at.mean()), "inside": float(inside.mean()), "ratio": float(at.mean() / inside.mean())}


def frame_gain(
    gen: Path, stem: str = RECON_CLIP, blocks: int = 8, draws: int = 2000, baseline: str = "baseline"
) -> dict[str, float]:
    """Per-frame PSNR of the generated video minus the `baseline` folder's (the warped reference, or
    `bilinear`), both against the truth: mean, share of frames where generated is better, and a 95 %
    bootstrap interval of the mean over blocks of `blocks` frames (neighbouring frames are not independent)."""
    from vlogger.core.video import decode_mp4_bytes

    v = {k: decode_mp4_bytes((gen / k / f"{stem}.mp4").read_bytes()) for k in ("truth", baseline, "generated")}
    truth = v["truth"].astype(np.float64)
    psnr = {
        k: 10 * np.log10(255**2 / ((v[k] - truth) ** 2).mean(axis=(1, 2, 3)).clip(1e-10))
        for k in (baseline, "generated")
    }
    gain = psnr["generated"] - psnr[baseline]
    low, high = block_interval(gain, blocks, draws)
    return {"mean": float(gain.mean()), "better": float((gain > 0).mean()), "low": float(low), "high": float(high)}


def evaluate(generated: Path, reference: Path, out: Path) -> dict[str, float]:
    """`vlogger evaluate` of one folder against references; its aggregate scores."""
    vlogger("evaluate", "--generated", str(generated), "--reference", str(reference), "--out", str(out))
    return json.loads((out / "results.json").read_text())["aggregate"]


def strip(rows: dict[str, np.ndarray], path: Path, n: int = 8) -> Path:
    """PNG: one row of `n` evenly spaced frames per video, all at the largest size."""
    import cv2

    size = max(v.shape[1] for v in rows.values())
    pick = np.linspace(0, min(len(v) for v in rows.values()) - 1, n).round().astype(int)
    grid = [
        np.concatenate([cv2.resize(v[i], (size, size), interpolation=cv2.INTER_NEAREST) for i in pick], 1)
        for v in rows.values()
    ]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(grid, 0), cv2.COLOR_RGB2BGR))
    return path


def cached(fn):
    """Keep a step's result in OUT/NAME/result.json: a rerun after an interruption skips it.
    The result comes back with its `name` (its folder under OUT)."""

    def run(name: str, *args, **kwargs) -> dict:
        path = args[1] / name / "result.json"
        if not path.is_file():
            result = fn(name, *args, **kwargs)
            path.write_text(json.dumps(result, indent=1))
        return {"name": name, **json.loads(path.read_text())}

    return run


def superres_args(cascade: list[Path]) -> list[str]:
    """`--superres` options for the models after the first of `cascade`."""
    return [a for c in cascade[1:] for a in ("--superres", str(c))]


@cached
def reconstruct(
    name: str,
    cascade: list[Path],
    out: Path,
    steps: int,
    guidance: float | None = None,
    bilinear: str | None = None,
    correlation: float | None = None,
    clip: Path = SHARED / "clips" / f"{RECON_CLIP}.mp4",
    start: float = RECON_START,
) -> dict:
    """A clip (default: the edtalk clip's held-out tail) from `start` driven by its own motion
    through `cascade`; the generated video and the warped-reference baseline scored against the
    ground truth (and, with
    `bilinear` naming an earlier run of the low-resolution model alone, that run's video
    bilinearly upsampled: what super-resolution must beat)."""
    import cv2

    from vlogger.core.audio import load_audio
    from vlogger.core.video import decode_mp4_bytes, encode_mp4
    from vlogger.generation.pipeline import load_video_model

    gen = out / name
    args = ["--motion-from", str(clip), "--start", str(start)]
    args += ["--reference-frame", "0", "--video-checkpoint", str(cascade[0]), "--out", str(gen), "--steps", str(steps)]
    args += ["--guidance", str(guidance)] if guidance is not None else []
    args += ["--noise-correlation", str(correlation)] if correlation is not None else []
    seconds = vlogger("generate", *args, *superres_args(cascade))
    for kind, src in (("generated", "video"), ("baseline", "warped_reference"), ("truth", "ground_truth")):
        (gen / kind).mkdir(exist_ok=True)
        shutil.copy(gen / f"{src}.mp4", gen / kind / f"{clip.stem}.mp4")
        if (gen / f"{src}.paste.npz").is_file():  # the paste contour: the border scores'
            shutil.copy(gen / f"{src}.paste.npz", gen / kind / f"{clip.stem}.paste.npz")
    kinds = ("truth", "baseline", "generated")
    videos = {k: decode_mp4_bytes((gen / k / f"{clip.stem}.mp4").read_bytes()) for k in kinds}
    scores = {}
    if bilinear:
        low = decode_mp4_bytes((out / bilinear / "video.mp4").read_bytes())
        size = videos["generated"].shape[1]
        up = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in low])
        (gen / "bilinear").mkdir(exist_ok=True)
        mp4 = encode_mp4(up, 25, crf=18, audio=load_audio(gen / "video.mp4"))
        (gen / "bilinear" / f"{clip.stem}.mp4").write_bytes(mp4)
        scores["bilinear"] = evaluate(gen / "bilinear", gen / "truth", gen / "eval_bilinear")
    models = [load_video_model(c) for c in cascade]
    frames, overlap = models[-1].cfg["data"]["frames"], models[-1].cfg["guidance"]["overlap"]
    return {
        "frames": len(videos["generated"]),
        "size": videos["generated"].shape[1],
        "seconds": seconds,
        "guidance": guidance,
        "noise_correlation": correlation,
        "generated": evaluate(gen / "generated", gen / "truth", gen / "eval_generated"),
        "baseline": evaluate(gen / "baseline", gen / "truth", gen / "eval_baseline"),
        **scores,
        "seams": {k: seams(videos[k], frames, overlap) for k in ("generated", "truth")},
        "strip": str(strip(videos, gen / "strip.png")),
    }


@cached
def photo_and_speech(
    name: str,
    cascade: list[Path],
    out: Path,
    steps: int,
    guidance: float,
    motion: Path,
    photo: str = PHOTO,
    speech: str = SPEECH,
) -> dict:
    """`vlogger generate` from a photo and a recording (in ../shared/data/images and audio);
    scored against the photo (identity) and the recording (sync, from the video's own track)."""
    gen = out / name
    args = ["--image", str(SHARED / "images" / photo), "--audio", str(SHARED / "audio" / speech)]
    args += ["--motion-checkpoint", str(motion), "--video-checkpoint", str(cascade[0]), "--out", str(gen)]
    args += ["--steps", str(steps), "--guidance", str(guidance)]
    seconds = vlogger("generate", *args, *superres_args(cascade))
    stem = Path(photo).stem
    for kind, src in (("generated", gen / "video.mp4"), ("reference", SHARED / "images" / photo)):
        (gen / kind).mkdir(exist_ok=True)
        shutil.copy(src, gen / kind / f"{stem}{src.suffix}")
    if (gen / "video.paste.npz").is_file():  # the paste contour: the no-truth border score's
        shutil.copy(gen / "video.paste.npz", gen / "generated" / f"{stem}.paste.npz")
    return {"seconds": seconds, "scores": evaluate(gen / "generated", gen / "reference", gen / "eval")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="folder of the training runs (existing checkpoints are reused)")
    ap.add_argument("--out", default="data/bench_stage2")
    ap.add_argument("--single-steps", type=int, default=300)
    ap.add_argument("--clip-steps", type=int, default=220)
    ap.add_argument("--superres-steps", type=int, default=80)
    ap.add_argument("--long-single-steps", type=int, default=900, help="phase single again, from the first run")
    ap.add_argument("--long-clip-steps", type=int, default=300, help="phase clip again, from the longer single run")
    ap.add_argument("--steps", type=int, default=25, help="sampler steps for generation")
    ap.add_argument("--guidance", type=float, default=1.0, help="stage-2 guidance beside the config's")
    ap.add_argument("--append", help="add the markdown block to this file (benchmarks/RESULTS.md)")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (SHARDS / "index.json").is_file():
        vlogger("preprocess", "--input", str(SHARED / "clips"), "--out", str(SHARDS), "--workers", "2")

    def steps(n: int) -> list[str]:
        return [f"trainer.max_steps={n}", f"trainer.val_every_steps={n // 2}", f"logging.media_every_steps={n}"]

    times: dict[str, float] = {}
    single, times["single"] = train(runs, "video", "stage2-single", [DATA], ["phase=single", *steps(args.single_steps)])
    clip_sets = ["phase=clip", "data.batch_size=2", f"model.init_from={single}", *steps(args.clip_steps)]
    clip, times["clip"] = train(runs, "video", "stage2-clip", [DATA], clip_sets)
    sr_configs = ["configs/train/superres_tiny.yaml", DATA]
    superres, times["superres"] = train(runs, "video", "stage2-superres", sr_configs, steps(args.superres_steps))
    motion, times["motion"] = train(runs, "motion", "stage2-motion", [DATA], [])
    # longer training (beyond the 30-minute budget): what reconstruction gains from it
    long_sets = ["phase=single", f"model.init_from={single}", *steps(args.long_single_steps)]
    single_long, times["single-long"] = train(runs, "video", "stage2-single-long", [DATA], long_sets)
    long_sets = ["phase=clip", "data.batch_size=2", f"model.init_from={single_long}", *steps(args.long_clip_steps)]
    clip_long, times["clip-long"] = train(runs, "video", "stage2-clip-long", [DATA], long_sets)
    summaries = {n: json.loads((runs / f"stage2-{n}" / "summary.json").read_text()) for n in TRAINED}
    g = args.guidance
    recon = {  # independent starting noise per frame (correlation 0) unless a row says otherwise
        "64 px, stage 2, guidance 1.5": reconstruct("recon64", [clip], out, args.steps, 1.5, correlation=0.0),
        f"64 px, stage 2, guidance {g:g}": reconstruct("recon64_g", [clip], out, args.steps, g, correlation=0.0),
        # one DDIM step from pure noise is the model's x0 estimate given only the conditions:
        # close to the conditional mean, the PSNR-optimal output a sample trades for detail
        f"64 px, stage 2, guidance {g:g}, 1 step": reconstruct("recon64_1step", [clip], out, 1, g, correlation=0.0),
        f"128 px, stage 2 + super-resolution, guidance {g:g}": reconstruct(
            "recon128_g", [clip, superres], out, args.steps, g, bilinear="recon64_g", correlation=0.0
        ),
        f"64 px, longer training, guidance {g:g}": reconstruct(
            "recon64_long", [clip_long], out, args.steps, g, correlation=0.0
        ),
        f"64 px, longer training, guidance {g:g}, noise correlation 1": reconstruct(
            "recon64_long_corr", [clip_long], out, args.steps, g, correlation=1.0
        ),
        f"64 px, longer training, guidance {g:g}, 1 step": reconstruct(
            "recon64_long_1step", [clip_long], out, 1, g, correlation=0.0
        ),
    }
    for r in recon.values():  # from the videos on disk, so that cached rows get it too
        r["frame_gain"] = frame_gain(out / r["name"])
    photo = photo_and_speech("photo", [clip, superres], out, args.steps, g, motion)
    (out / "results.json").write_text(
        json.dumps({"train_seconds": times, "summaries": summaries, "reconstruction": recon, "photo": photo}, indent=1)
    )
    publish(report(times, summaries, recon, photo, args), args.append)


def report(times: dict, summaries: dict, recon: dict, photo: dict, args: argparse.Namespace) -> list[str]:
    """The markdown block for RESULTS.md."""
    lines = [
        f"### Stage 2 on CPU: tiny training, reconstruction, generation, {datetime.date.today()} ({machine()})",
        "",
        "`python -m benchmarks.stage2`: tiny configs on the real clips (data/real_shards; held out: two identities and",
        f"the last 4 s of every {RECON_CLIP} clip). DDIM {args.steps} steps unless a row says otherwise.",
        "",
        "| run | steps | wall time | validation loss start -> end |",
        "|---|---|---|---|",
    ]
    for name in TRAINED:
        sm = summaries[name]
        loss = f"{sm['val_loss_start']:.3f} -> {sm['val_loss_end']:.3f}"
        lines.append(f"| {name} | {sm['global_step']} | {times[name] / 60:.1f} min | {loss} |")
    lines.append(f"| stage 1 (motion tiny) | | {times['motion'] / 60:.1f} min | |")
    lines += [
        "",
        f"Both stage-2 phases: {(times['single'] + times['clip']) / 60:.1f} min; the longer runs continue from them",
        f"(single-long from single's EMA weights, clip-long from single-long's). Reconstruction of {RECON_CLIP}'s",
        f"held-out seconds {RECON_START:g}-{RECON_START + 4:g} from its own tracked motion, its frame 0 as reference,",
        "scored by `vlogger evaluate` against the ground-truth crop:",
        "",
        "| output | video | PSNR dB | SSIM | identity cosine | jitter | LME | generation time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {"generated": "generated", "baseline": "warped reference (baseline)", "bilinear": "64 px output, bilinear"}
    for label, r in recon.items():
        for kind in [k for k in names if k in r]:
            a = r[kind]
            row = [label, names[kind]]
            row += [f"{a.get(k, float('nan')):.3f}" for k in ("psnr", "ssim", "identity_cosine", "jitter", "lme")]
            row.append(f"{r['seconds']:.0f} s for {r['frames']} frames" if kind == "generated" else "")
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Per-frame PSNR gain over the baseline (95 % interval: bootstrap over 8-frame blocks):", ""]
    for label, r in recon.items():
        f = r["frame_gain"]
        lines.append(
            f"- {label}: {f['mean']:+.2f} dB [{f['low']:+.2f}, {f['high']:+.2f}], better in {f['better']:.0%} of frames"
        )
    lines += ["", "Outpainting seams (mean |frame-to-frame change|, 0-255, at window borders / inside windows):", ""]
    for label, r in recon.items():
        g, t = r["seams"]["generated"], r["seams"]["truth"]
        lines.append(
            f"- {label}: generated {g['border']:.2f} / {g['inside']:.2f} (ratio {g['ratio']:.2f}); "
            f"ground truth at the same frames {t['border']:.2f} / {t['inside']:.2f} (ratio {t['ratio']:.2f})"
        )
    sc = photo["scores"]
    lines += [
        "",
        f"Photo + speech ({PHOTO} + {SPEECH}, 128 px through the cascade, guidance {args.guidance:g}): "
        f"{photo['seconds']:.0f} s wall;",
        "scores: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(sc.items())),
    ]
    return lines


if __name__ == "__main__":
    main()
