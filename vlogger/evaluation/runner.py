"""`vlogger evaluate`: score a folder of generated videos under the pinned protocol.

Pairs files by name: generated/NAME.mp4 with reference/NAME.(mp4|mov|mkv|webm) (ground truth:
paired metrics + identity reference = its first frame) or reference/NAME.(png|jpg|jpeg)
(identity reference only), and audio/NAME.wav when --audio is given (else the video's
own track). Metrics whose weights are missing are skipped with the command that fetches
them; a video that cannot be scored is listed with the reason and the rest go on.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vlogger.core import landmarks
from vlogger.core.errors import BadInput
from vlogger.evaluation import motion
from vlogger.evaluation.avsync import AVSync
from vlogger.evaluation.crops import syncnet_crops
from vlogger.evaluation.fvd import split_clips
from vlogger.evaluation.report import write_report
from vlogger.evaluation.tracks import TrackedVideo, eval_tracker, track_video

VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg")


def unpaired_metrics(protocol: dict) -> dict[str, Callable[[TrackedVideo], float]]:
    """Scores of a generated video on its own."""
    return {
        "jitter": motion.jitter,
        "expression_diversity": motion.expression_diversity,
        "cpbd": partial(motion.cpbd_sharpness, frames=protocol["cpbd"]["frames"]),
    }


def paired_metrics(protocol: dict) -> dict[str, Callable[[TrackedVideo, TrackedVideo], float]]:
    """Scores against ground truth; the pixel ones at the protocol's size and frame step."""
    px = protocol["pixel_metrics"]
    return {
        "lme": motion.lip_landmark_error,
        "head_pose_error": motion.head_pose_error,
        "psnr": partial(motion.psnr, max_side=px["max_side"], step=px["frame_step"]),
        "ssim": partial(motion.ssim, max_side=px["max_side"], step=px["frame_step"]),
    }


def _find(folder: Path | None, stem: str, exts: tuple[str, ...]) -> Path | None:
    if folder is None:
        return None
    return next((folder / (stem + e) for e in exts if (folder / (stem + e)).is_file()), None)


class _Optional:
    """A metric that may be unavailable here (missing package or weights): remembers why."""

    def __init__(self, name: str, build: Callable[[], object]):
        self.name, self.metric, self.reason = name, None, None
        try:
            self.metric = build()
        except Exception as e:  # missing weights / package: the report says which and how to get it
            self.reason = f"{type(e).__name__}: {e}"


def optional_metrics(protocol: dict) -> dict[str, _Optional]:
    """The metrics that need a package or weights this machine may lack, imported only when built."""

    def module(name: str):
        return importlib.import_module(f"vlogger.evaluation.{name}")

    builders = {
        "identity": lambda: module("identity").IdentitySimilarity(
            module("identity").make_backbone(protocol["identity"]["backbone"])
        ),
        "lse": lambda: module("lse").LSE(),
        "fid": lambda: module("fid").make_fid(),
        "fvd": lambda: module("fvd").FVD(num_frames=protocol["fvd"]["clip_frames"]),
    }
    return {name: _Optional(name, build) for name, build in builders.items()}


def _distribution_update(fid: _Optional, fvd: _Optional, gen: TrackedVideo, ref: TrackedVideo, protocol: dict) -> None:
    """Feed FID (frames spread over each video) and FVD (consecutive clips) with both videos."""
    import torch

    for video, real in ((gen, False), (ref, True)):
        frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2)
        if fid.metric is not None:
            idx = np.linspace(0, len(frames) - 1, min(len(frames), protocol["fid"]["frames_per_video"])).astype(int)
            fid.metric.update(frames[idx], real=real)
        if fvd.metric is not None:
            clips = split_clips(frames, protocol["fvd"]["clip_frames"])[: protocol["fvd"]["clips_per_video"]]
            if len(clips):
                fvd.metric.update(clips, real=real)


def _reference_image(ref_path: Path | None, ref: TrackedVideo | None) -> np.ndarray | None:
    if ref is not None:
        return ref.frames[0]
    if ref_path is not None:
        return cv2.cvtColor(cv2.imread(str(ref_path)), cv2.COLOR_BGR2RGB)
    return None


def evaluate(generated: Path, reference: Path | None, audio_dir: Path | None, protocol: dict) -> dict:
    """Per-video scores, aggregates and the list of unscorable videos."""
    videos = sorted(p for p in generated.iterdir() if p.suffix.lower() in VIDEO_EXT)
    if not videos:
        raise BadInput(generated, "no generated videos (mp4/mov/mkv/webm) in this folder")
    tracker = eval_tracker()
    sync = AVSync(protocol["avsync"], fps=protocol["video"]["fps"])
    paired, unpaired = paired_metrics(protocol), unpaired_metrics(protocol)
    means = {k: motion.VideoMean(fn) for k, fn in {**unpaired, **paired}.items()}
    optional = optional_metrics(protocol)
    identity, lse, fid, fvd = (optional[k] for k in ("identity", "lse", "fid", "fvd"))
    per_video, unscorable, examples = {}, [], {}
    for path in tqdm(videos, desc="evaluate", unit="video"):
        try:
            gen = track_video(path, protocol, tracker, _find(audio_dir, path.stem, (".wav", ".flac", ".mp3")))
            ref_path = _find(reference, path.stem, VIDEO_EXT) or _find(reference, path.stem, IMAGE_EXT)
            ref = track_video(ref_path, protocol, tracker) if ref_path and ref_path.suffix in VIDEO_EXT else None
        except BadInput as e:
            unscorable.append({"video": path.name, "reason": e.reason})
            continue
        row: dict = {}
        if gen.audio is not None:
            sync.update(landmarks.mouth_opening(gen.lmk, gen.landmark_format), gen.audio)
            row.update({k: sync.last[k] for k in ("av_offset", "av_confidence")})
            row["sync_curve"] = sync.last["curve"]
            if lse.metric is not None:
                lse.metric.update(syncnet_crops(gen), gen.audio)
                row.update(dict(zip(("lse_c", "lse_d", "lse_offset"), lse.metric.per_video[-1], strict=True)))
        for name in unpaired:
            means[name].update(gen)
            row[name] = means[name].last
        if ref is not None:
            for name in paired:
                try:
                    means[name].update(gen, ref)
                    row[name] = means[name].last
                except ValueError as e:  # e.g. frame sizes differ: PSNR/SSIM undefined
                    row[name + "_skipped"] = str(e)
            _distribution_update(fid, fvd, gen, ref, protocol)
            examples[path.stem] = (gen.frames, ref.frames)
        else:
            examples[path.stem] = (gen.frames, None)
        ref_img = _reference_image(ref_path, ref)
        if identity.metric is not None and ref_img is not None:
            identity.metric.update(ref_img, gen.frames[:: max(1, len(gen.frames) // protocol["identity"]["frames"])])
            if identity.metric.last_skipped is None:
                row["identity_cosine"] = identity.metric.last
            else:
                row["identity_cosine_skipped"] = identity.metric.last_skipped
        per_video[path.name] = row
    aggregate = {name: float(m.compute()) for name, m in means.items() if float(m.count) > 0}
    aggregate.update(sync.compute() if float(sync.videos) > 0 else {})
    skipped = {}
    for opt in optional.values():
        if opt.metric is None:
            skipped[opt.name] = opt.reason
            continue
        if not opt.metric.update_count:
            continue
        try:
            value = opt.metric.compute()
        except (RuntimeError, ValueError) as e:  # e.g. FID/FVD with fewer than 2 samples
            skipped[opt.name] = str(e)
            continue
        # per-video metrics give a dict (face-miss counts are bookkeeping, not a score); FID/FVD one number
        scores = value if isinstance(value, dict) else {opt.name: float(value)}
        for k, v in scores.items():
            if "no_face" in k or not isinstance(v, int | float):
                continue
            if np.isnan(v):  # e.g. identity when no face was found anywhere: say so instead of a NaN
                counts = ", ".join(f"{n} {c}" for n, c in scores.items() if "no_face" in n)
                skipped[k] = f"no video could be scored ({counts})"
            else:
                aggregate[k] = v
    return {
        "protocol_version": protocol["version"],
        "identity_backbone": protocol["identity"]["backbone"] if identity.metric is not None else None,
        "videos": len(videos),
        "scored": len(per_video),
        "aggregate": aggregate,
        "per_video": per_video,
        "unscorable": unscorable,
        "skipped_metrics": skipped,
        "_examples": examples,
    }


def write_results(results: dict, out: Path) -> Path:
    """results.json (+ report.html) in out; the frames for the report are not serialised."""

    out.mkdir(parents=True, exist_ok=True)
    examples = results.pop("_examples")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    write_report(results, examples, out / "report.html")
    return out / "results.json"
