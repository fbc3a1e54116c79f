"""Image + audio -> motion (stage 1) -> controls, with temporal outpainting for any length.

`generate_motion` is what `vlogger generate-motion` runs: reference analysis of the photo,
stage 1 over the whole recording window by window, the motion written as per-frame
parameters, and the controls rendered as a video with the recording muxed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vlogger.body.facemesh import FaceBasis
from vlogger.body.motion import MotionLayout, from_motion, reference_of, reference_vector
from vlogger.config import load_config
from vlogger.errors import BadInput
from vlogger.io.audio import load_audio
from vlogger.models.audio import LogMel


def load_motion_model(path: str | Path, device: str = "cpu"):
    """A stage-1 checkpoint, read with `weights_only=True` (no pickled code runs)."""
    from vlogger.models.motion.module import MotionDiffusion

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no stage-1 checkpoint (train one with `vlogger train motion`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    dim = MotionLayout(hp["cfg"]["model"]["n_expression"]).dim
    module = MotionDiffusion(hp["cfg"], torch.zeros(dim), torch.ones(dim), hp["basis_id"])
    module.load_state_dict(ckpt["state_dict"])
    return module.to(device).eval()


def speech_features(path: str | Path, fps: int, preprocess_cfg: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """16 kHz mono audio, its log-mel rows for whole frames, and the frame count; BadInput for
    unreadable, empty or silent recordings."""
    sr = preprocess_cfg["ingest"]["sample_rate"]
    try:
        audio = load_audio(path, sr)
    except Exception as e:
        raise BadInput(path, f"cannot read audio: {e}") from e
    n_frames = int(len(audio) * fps // sr)
    if n_frames < 1:
        raise BadInput(path, "audio is shorter than one video frame")
    if np.abs(audio).max() < 1e-4:
        raise BadInput(path, "audio is silent")
    mel = LogMel.from_config(preprocess_cfg["audio_features"], sr).for_frames(audio, n_frames, fps)
    return audio, mel, n_frames


@dataclass
class MotionResult:
    params: dict  # per-frame face-mesh parameters (crop pixels of the reference crop)
    motion: torch.Tensor  # (T, D) motion vectors
    reference: object  # vlogger.body.reference.ReferenceImage
    audio: np.ndarray
    fps: int
    basis: FaceBasis


def generate_motion(
    image: str | Path,
    audio: str | Path,
    checkpoint: str | Path,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    sampler: str | None = None,
    device: str = "cpu",
) -> MotionResult:
    """Stage 1 for a photo and a recording of any length."""
    from vlogger.body.reference import analyse_reference
    from vlogger.models.motion.generate import generate_long

    module = load_motion_model(checkpoint, device)
    pre = load_config(None, "preprocess/default.yaml")
    basis = FaceBasis.load(module.cfg["model"]["basis"])
    if basis.basis_id != module.hparams["basis_id"]:
        raise ValueError(f"{checkpoint}: trained with basis {module.hparams['basis_id']}, loaded {basis.basis_id}")
    fps = pre["ingest"]["fps"]
    wav, mel, n_frames = speech_features(audio, fps, pre)
    ref = analyse_reference(image, pre, basis)
    reference = reference_of(ref.params, 0)
    k = module.layout.n_expression
    gen = torch.Generator(device=device).manual_seed(seed)
    kw = {"steps": steps, "guidance": guidance, "sampler": sampler}
    motion = generate_long(module, mel, reference_vector(reference, k), n_frames, gen, **kw).cpu()
    params = {k2: v.numpy() for k2, v in from_motion(motion, reference).items()}
    params |= {"identity": ref.params["identity"], "size": ref.params["size"], "basis_id": basis.basis_id}
    return MotionResult(params, motion, ref, wav, fps, basis)


def write_motion(result: MotionResult, out: Path, size: int = 256) -> dict[str, Path]:
    """motion.npz (parameters + motion vectors) and controls.mp4 (semantic | coords | warped,
    the recording muxed in) under `out`."""
    from vlogger.body.control_video import ClipRenderer
    from vlogger.body.fitting import facemesh_mesh
    from vlogger.body.params import to_npz_bytes
    from vlogger.io.video import encode_mp4

    out.mkdir(parents=True, exist_ok=True)
    npz = out / "motion.npz"
    npz.write_bytes(to_npz_bytes({**result.params, "motion": result.motion.numpy(), "fps": result.fps}))
    ref = result.reference
    renderer = ClipRenderer(facemesh_mesh(result.basis), ref.crop, ref.params, size)
    src = int(result.params["size"])
    frames = list(tqdm(renderer.strips(result.params, src), total=len(result.motion), desc="render"))
    video = out / "controls.mp4"
    video.write_bytes(encode_mp4(frames, result.fps, "libx264", 20, "veryfast", result.audio, 16000))
    return {"motion": npz, "video": video}


def load_video_model(path: str | Path, device: str = "cpu"):
    """A stage-2 checkpoint, read with `weights_only=True`."""
    from vlogger.models.video.module import VideoDiffusion

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no stage-2 checkpoint (train one with `vlogger train video`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["hyper_parameters"]["cfg"]
    module = VideoDiffusion({**cfg, "model": {**cfg["model"], "init_from": None}})
    module.load_state_dict(ckpt["state_dict"])
    return module.to(device).eval()


def generate_video(
    result: MotionResult,
    checkpoint: str | Path,
    out: Path,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    device: str = "cpu",
) -> Path:
    """Stage 2 over stage 1's motion: controls at the model's size, frames by outpainting, an mp4
    at 25 fps with the recording muxed in. (No super-resolution yet: the video has the stage-2 size.)"""
    from vlogger.body.control_video import ClipRenderer
    from vlogger.body.fitting import facemesh_mesh
    from vlogger.datasets.video import to_unit
    from vlogger.io.video import encode_mp4
    from vlogger.models.video.generate import generate_frames

    module = load_video_model(checkpoint, device)
    size = module.cfg["data"]["size"]
    ref = result.reference
    renderer = ClipRenderer(facemesh_mesh(result.basis), ref.crop, ref.params, size)
    controls = torch.cat([c.stacked for c in renderer.controls(result.params, int(result.params["size"]))])
    gen = torch.Generator(device=device).manual_seed(seed)
    frames = generate_frames(module, to_unit(ref.crop[None], size)[0], controls, gen, steps, guidance)
    video = ((frames.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "video.mp4"
    path.write_bytes(encode_mp4(video, result.fps, "libx264", 18, "veryfast", result.audio, 16000))
    return path
