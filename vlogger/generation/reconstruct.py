"""Motion from a real clip instead of stage 1 (`vlogger generate --motion-from VIDEO`).

The clip goes through preprocessing's own tracking, crop and 3D fit, so its parameters are
exactly what stage 2 trained on. Without `--image`, a frame of the clip itself is the
reference and the clip's crop frames are the ground truth: stage 2 is scored against them
(PSNR/SSIM), beside the baseline that only pastes the warped reference. With `--image`,
the clip's motion, relative to its reference frame, drives the photo instead (retargeting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlogger.body.control_video import ClipRenderer, params_slice
from vlogger.body.motion import carry_parts, from_motion, reference_of, to_motion
from vlogger.body.params import from_npz
from vlogger.body.reference import ReferenceImage, analyse_reference
from vlogger.core.audio import from_flac
from vlogger.core.errors import BadInput
from vlogger.core.paste_mask import write_paste_mask
from vlogger.core.spec import DataSpec
from vlogger.core.tracking import filter_native_logs, make_tracker
from vlogger.core.video import decode_frames
from vlogger.generation.pipeline import (
    BodyFiles,
    MotionResult,
    inference_config,
    spec_body,
    speech_features,
    write_video,
)
from vlogger.preprocessing.video_to_clips import process_video
from vlogger.training.checkpoints import read_checkpoint


@dataclass
class Reconstruction:
    motion: MotionResult
    ground_truth: np.ndarray | None  # (T, S, S, 3) uint8 crop frames, None when retargeted to a photo
    start_frame: int  # first frame of the clip that was driven


def track_clips(video: Path, pre: dict) -> list[dict]:
    """Every clip preprocessing makes of the video, in order (BadInput with its reasons if none)."""

    filter_native_logs()
    res = process_video(video, video.name, pre, make_tracker(pre["tracking"]))
    if not res.samples:
        reasons = "; ".join(r["reason"] for r in res.rejected) or "no clip"
        raise BadInput(video, f"no usable clip: {reasons}")
    return res.samples


def motion_from_video(
    video: str | Path,
    checkpoint: str | Path,
    image: str | Path | None = None,
    audio: str | Path | None = None,
    reference_frame: int = 0,
    start: float = 0.0,
    *,
    body_model_path: str | None = None,
) -> Reconstruction:
    """Tracked, fitted motion of frames [start s, end) of a clip, driving the clip's frame
    `reference_frame` (reconstruction) or the photo `image` (retargeting). The audio is the
    clip's own from `start` unless `audio` names another recording. The clip is prepared with
    the data spec of `checkpoint` (the stage-2 model that will render it); `body_model_path` is
    the SMPL-X folder for a model trained on SMPL-X fits."""
    video = Path(video)
    cfg, spec, _ = read_checkpoint(checkpoint, "video")
    files = BodyFiles(cfg["model"]["basis"], body_model_path)
    samples = track_clips(video, inference_config(spec, files))
    if len(samples) > 1:
        print(f"{video}: {len(samples)} clips (shot cuts or length); driving with the first")
    fps = samples[0]["json"]["fps"]
    first = round(start * fps)
    rec = reconstruction(samples[0], spec, files, reference_frame, first, None, image, audio)
    if image is not None:
        rec.ground_truth = None  # the clip's frames are not the photo's person
    return rec


def reconstruction(
    sample: dict,
    spec: DataSpec,
    files: BodyFiles,
    reference_frame: int,
    first: int,
    end: int | None = None,
    image: str | Path | None = None,
    audio: str | Path | None = None,
) -> Reconstruction:
    """Frames [first, end) of a tracked clip (`track_clips`) as motion relative to the clip's
    frame `reference_frame` (or driving the photo `image`), with the clip's own audio over
    those frames unless `audio` names a recording; `ground_truth` holds the clip's crop frames."""
    video = sample["json"]["source"]
    body = spec_body(spec, files)
    meta, params = sample["json"], from_npz(sample["params.npz"])  # a sample before the shard writer
    fps, n = meta["fps"], meta["n_frames"]
    end = n if end is None else end
    if not 0 <= reference_frame < n or not 0 <= first < end <= n:
        raise BadInput(
            video, f"reference frame {reference_frame} / frames [{first}, {end}) outside its {n / fps:.1f} s clip"
        )
    frames = decode_frames(sample["mp4"], [reference_frame, *range(first, end)])
    lmk, pose = sample["lmk.npy"], sample["pose.npy"]
    ref_params = params_slice(params, reference_frame, reference_frame + 1)
    driving = params_slice(params, first, end)
    if image is None:
        ref = ReferenceImage(frames[0], lmk[reference_frame], pose[reference_frame], ref_params)
    else:
        ref = analyse_reference(image, inference_config(spec, files), body.fit, spec.parts)
        src, dst = reference_of(params, reference_frame), reference_of(ref.params, 0)
        moved = from_motion(to_motion(driving, src), dst) | carry_parts(driving, src, dst)
        driving = body.drive(moved, ref.params)
    motion = to_motion(driving, reference_of(ref.params, 0))
    if audio is None:
        wav, sr = from_flac(sample["flac"])
        wav = wav[round(first / fps * sr) : round(end / fps * sr)]
        if np.abs(wav).max(initial=0.0) < 1e-4:
            raise BadInput(video, "its audio is silent over the driven frames; give --audio")
    else:
        wav, _, _ = speech_features(audio, spec)
    result = MotionResult(driving, torch.as_tensor(motion), ref, wav, fps, body, spec, spec.parts)
    return Reconstruction(result, frames[1:], first)


def warped_baseline(result: MotionResult, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline stage 2 must beat: the reference image with the renderer's warped reference
    pasted wherever it carries a colour (T, size, size, 3) uint8, and where that is (T, size, size)
    bool: its paste masks."""
    import cv2

    ref = result.reference
    renderer = ClipRenderer(result.body.mesh, ref.crop, ref.params, size)
    image = cv2.resize(ref.crop, (size, size), interpolation=cv2.INTER_AREA)
    image = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    out, masks = [], []
    for c in renderer.controls(result.params, int(result.params["size"])):
        pasted = c.paste(image)
        out.append((pasted * 255).round().byte().permute(0, 2, 3, 1).numpy())
        masks.append(c.mask[:, 0].numpy() > 0.5)
    return np.concatenate(out), np.concatenate(masks)


def write_references(rec: Reconstruction, out: Path, size: int) -> dict[str, Path]:
    """Beside video.mp4: ground_truth.mp4 (the clip's crop frames, area-resized) and
    warped_reference.mp4 (the baseline), same size, frames and audio: what `vlogger evaluate`
    and `vlogger.evaluation` compare; each with the paste masks beside it (NAME.paste.npz), so the
    truth's own border scores say what a seamless frame scores on the same contour."""
    import cv2

    frames, masks = warped_baseline(rec.motion, size)
    paths = {"baseline": write_video(frames, rec.motion, out / "warped_reference.mp4")}
    write_paste_mask(paths["baseline"], masks)
    if rec.ground_truth is not None:
        truth = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in rec.ground_truth])
        paths["truth"] = write_video(truth, rec.motion, out / "ground_truth.mp4")
        write_paste_mask(paths["truth"], masks)
    return paths
