"""Image + audio -> motion (stage 1) -> controls, with temporal outpainting for any length.

`generate_motion` is what `vlogger generate-motion` runs: reference analysis of the photo,
stage 1 over the whole recording window by window, the motion written as per-frame
parameters, and the controls rendered as a video with the recording muxed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vlogger.body.control_video import ClipRenderer
from vlogger.body.fitting import BodyModel, load_body
from vlogger.body.motion import MotionLayout, from_motion, reference_of, reference_vector
from vlogger.body.params import to_npz_bytes
from vlogger.body.reference import analyse_reference
from vlogger.body.render import Controls
from vlogger.core.audio import load_audio
from vlogger.core.config import load_config
from vlogger.core.errors import BadInput, ContractError, UsageError
from vlogger.core.frames import to_uint8, to_unit
from vlogger.core.paste_mask import write_paste_mask
from vlogger.core.spec import LEGACY_PARTS, DataSpec
from vlogger.core.video import Mp4Writer, encode_mp4
from vlogger.models.motion.generate import generate_long
from vlogger.models.video.generate import stream_frames
from vlogger.preprocessing.audio_features import audio_features
from vlogger.training.checkpoints import read_checkpoint
from vlogger.training.motion import MotionDiffusion
from vlogger.training.video import VideoDiffusion


def load_motion_model(path: str | Path, device: str = "cpu") -> MotionDiffusion:
    """A stage-1 checkpoint (`vlogger.training.checkpoints.read_checkpoint`), in eval mode."""
    cfg, spec, state = read_checkpoint(path, "motion")
    m = cfg["model"]
    dim = MotionLayout.of_parts(m["n_expression"], tuple(m["parts"]), m["hand_components"]).dim
    module = MotionDiffusion(cfg, torch.zeros(dim), torch.ones(dim), spec)
    module.load_state_dict(state)
    return module.to(device).eval()


def speech_features(path: str | Path, spec: DataSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """Mono audio at the spec's rate, its log-mel rows for whole frames (the spec's features),
    and the frame count; BadInput for unreadable, empty or silent recordings."""
    sr, fps = spec.sample_rate, spec.fps
    try:
        audio = load_audio(path, sr)
    except Exception as e:
        raise BadInput(path, f"cannot read audio: {e}") from e
    n_frames = int(len(audio) * fps // sr)
    if n_frames < 1:
        raise BadInput(path, "audio is shorter than one video frame")
    if np.abs(audio).max() < 1e-4:
        raise BadInput(path, "audio is silent")
    mel = audio_features(spec.audio_features, sr).for_frames(audio, n_frames, fps)
    return audio, mel, n_frames


VIDEO_CODEC = ("libx264", 18, "veryfast")  # codec, crf, preset of video.mp4, streamed or not


@dataclass(frozen=True)
class BodyFiles:
    """Where the body model of a checkpoint's spec is: the face-mesh basis file (None: shipped,
    a checkpoint's `model.basis`) or the SMPL-X folder (licence-gated, so never in a checkpoint)."""

    basis: str | None = None
    model_path: str | None = None


def inference_config(spec: DataSpec, body: BodyFiles) -> dict:
    """The preprocessing settings a photo or clip is prepared with at inference: today's tracking
    thresholds, the checkpoint's spec for everything the model's inputs depend on, and the body
    model's files."""
    cfg = spec.preprocess_config(load_config(None, "preprocess/default.yaml"))
    cfg["fit"] |= {"basis": body.basis, "model_path": body.model_path}
    return cfg


def spec_body(spec: DataSpec, files: BodyFiles) -> BodyModel:
    """The spec's body model loaded from `files`, which must hold the model it was trained on."""
    if spec.body_model is None:
        raise ContractError(
            "body model: none in the checkpoint's data spec (shards preprocessed with fit.body_model=null)"
        )
    if spec.body_model == "smplx" and files.model_path is None:
        raise UsageError(f"the checkpoint was trained on SMPL-X fits ({spec.basis_id}): give the folder that holds it")
    body = load_body(spec.body_model, files.basis, files.model_path)
    if body.basis_id != spec.basis_id:
        where = files.model_path if spec.body_model == "smplx" else files.basis or "the shipped basis"
        raise ContractError(f"basis: {spec.basis_id} in the checkpoint's data spec, {body.basis_id} in {where}")
    return body


@dataclass
class MotionResult:
    params: dict  # per-frame body-model parameters (crop pixels of the reference crop)
    motion: torch.Tensor  # (T, D) motion vectors
    reference: object  # vlogger.body.reference.ReferenceImage
    audio: np.ndarray
    fps: int
    body: BodyModel
    spec: DataSpec  # the data contract the motion was made under
    parts: tuple[str, ...] = LEGACY_PARTS  # what `params` carries (a stage-1 model's parts)


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How a model samples; None keeps the checkpoint's own setting."""

    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None  # stage 1: ddpm | ddim | dpm
    noise_correlation: float | None = None  # stage 2 and super-resolution
    device: str = "cpu"


def generate_motion(
    image: str | Path,
    audio: str | Path,
    checkpoint: str | Path,
    sampling: Sampling = Sampling(),
    *,
    body_model_path: str | None = None,
) -> MotionResult:
    """Stage 1 for a photo and a recording of any length (`body_model_path`: the SMPL-X folder,
    for a model trained on SMPL-X fits)."""
    device = sampling.device
    module = load_motion_model(checkpoint, device)
    spec = module.spec
    files = BodyFiles(module.cfg["model"]["basis"], body_model_path)
    body = spec_body(spec, files)
    wav, mel, n_frames = speech_features(audio, spec)
    ref = analyse_reference(image, inference_config(spec, files), body.fit, module.parts)
    reference = reference_of(ref.params, 0)
    layout = module.motion_layout()
    gen = torch.Generator(device=device).manual_seed(sampling.seed)
    kw = {"steps": sampling.steps, "guidance": sampling.guidance, "sampler": sampling.sampler}
    ref_vec = reference_vector(reference, layout.n_expression, layout)
    motion = generate_long(module, mel, ref_vec, n_frames, gen, **kw).cpu()
    params = body.drive(from_motion(motion, reference, layout), ref.params)
    return MotionResult(params, motion, ref, wav, spec.fps, body, spec, module.parts)


def write_motion(result: MotionResult, out: Path, size: int = 256) -> dict[str, Path]:
    """motion.npz (parameters + motion vectors) and controls.mp4 (semantic | coords | warped,
    the recording muxed in) under `out`."""

    out.mkdir(parents=True, exist_ok=True)
    npz = out / "motion.npz"
    npz.write_bytes(to_npz_bytes({**result.params, "motion": result.motion.numpy(), "fps": result.fps}))
    ref = result.reference
    renderer = ClipRenderer(result.body.mesh, ref.crop, ref.params, size, parts=result.parts)
    src = int(result.params["size"])
    frames = list(tqdm(renderer.strips(result.params, src), total=len(result.motion), desc="render"))
    video = out / "controls.mp4"
    video.write_bytes(encode_mp4(frames, result.fps, "libx264", 20, "veryfast", result.audio, 16000))
    return {"motion": npz, "video": video}


def load_video_model(path: str | Path, device: str = "cpu") -> VideoDiffusion:
    """A stage-2 (or super-resolution) checkpoint, in eval mode."""
    cfg, spec, state = read_checkpoint(path, "video")
    module = VideoDiffusion({**cfg, "model": {**cfg["model"], "init_from": None}, "distill": None}, spec)
    module.load_state_dict(state)
    return module.to(device).eval()


def _model_frames(
    module,
    result: MotionResult,
    gen,
    steps,
    guidance,
    lowres: Iterator[torch.Tensor] | None,
    desc: str,
    masks: list[np.ndarray] | None = None,
) -> Iterator[torch.Tensor]:
    """One model of the cascade over the whole clip, window by window: controls rendered at its
    size on its device as the windows need them, frames by outpainting (super-resolution models
    also take the previous model's frames as they come). `masks` collects the controls' paste
    masks (k, S, S) as they pass."""
    ref, size = result.reference, module.size
    renderer = ClipRenderer(result.body.mesh, ref.crop, ref.params, size, str(module.device), parts=module.parts)
    controls = (_kept_mask(c.stacked, masks) for c in renderer.controls(result.params, int(result.params["size"])))
    reference = to_unit(ref.crop[None], size)[0]
    return stream_frames(module, reference, controls, len(result.motion), gen, steps, guidance, lowres, desc)


def _kept_mask(stacked: torch.Tensor, masks: list[np.ndarray] | None) -> torch.Tensor:
    if masks is not None:
        masks.append(Controls(stacked).mask[:, 0].cpu().numpy() > 0.5)
    return stacked


def load_cascade(checkpoint: str | Path, superres: list[str | Path], device: str = "cpu") -> list:
    """Stage 2 and its super-resolution models, checked to chain (each takes the previous size)."""
    models = [load_video_model(checkpoint, device)]
    if models[0].superres:
        raise UsageError(f"{checkpoint}: a super-resolution checkpoint; give it to --superres")
    for path in superres:
        m = load_video_model(path, device)
        if not m.superres:
            raise UsageError(f"{path}: not a super-resolution checkpoint (no `superres` in its config)")
        if m.superres["from_size"] != models[-1].size:
            raise UsageError(
                f"{path}: upsamples {m.superres['from_size']} px, the model before makes {models[-1].size}"
            )
        models.append(m)
    return models


def require_drivable(model: VideoDiffusion, where: str, result: MotionResult) -> None:
    """A stage-2 model renders `result` when their data specs agree (but for the parts the shards
    carried, and the audio features: stage 2 reads none, so a Whisper-fed stage 1 drives a stage 2 of
    log-mel shards) and the motion carries every part the model draws; else a ContractError naming both."""
    model.spec.require_same(result.spec, where, "the motion's source", ignore=("parts", "audio_features"))
    missing = [p for p in model.parts if p not in result.parts]
    if missing:
        raise ContractError(
            f"parts: {where} draws {', '.join(model.parts)}, the motion carries {', '.join(result.parts)} "
            f"(no {', '.join(missing)}): use a stage-1 model with them or a stage-2 model without"
        )


def write_video(frames: np.ndarray, result: MotionResult, path: Path) -> Path:
    """frames at 25 fps with the recording muxed in."""

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_mp4(frames, result.fps, *VIDEO_CODEC, result.audio, 16000))
    return path


def video_chunks(
    result: MotionResult,
    models: Sequence,
    sampling: Sampling = Sampling(),
    size: int | None = None,
    masks: list[np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """The cascade's output, (k, S, S, 3) uint8 per outpainting window of the last model, as it
    is made: every model pulls the previous one's frames window by window. Each model draws from
    its own generator (seed + its place in the cascade), so the frames do not depend on how the
    models' windows interleave. bf16 autocast on a GPU (as benchmarks/gpu_generate.py). `masks`
    collects stage 2's paste masks as its windows are made."""
    device = sampling.device
    frames = None
    for i, m in enumerate(models):
        gen = torch.Generator(device=device).manual_seed(sampling.seed + i)
        guidance = sampling.guidance if i == 0 else None  # super-resolution: its checkpoint's
        desc = f"stage 2 ({m.size} px)" if i == 0 else f"super-resolution ({m.size} px)"
        frames = _model_frames(m, result, gen, sampling.steps, guidance, frames, desc, masks if i == 0 else None)
    cuda = torch.device(device).type == "cuda"
    while True:
        with torch.autocast("cuda", torch.bfloat16, enabled=cuda):  # around each step of the generators
            chunk = next(frames, None)
        if chunk is None:
            return
        yield to_uint8(chunk, size)


def generate_video(
    result: MotionResult,
    checkpoint: str | Path,
    out: Path,
    sampling: Sampling = Sampling(),
    *,
    superres: Sequence[str | Path] = (),
    size: int | None = None,
    stream: bool = False,
    on_frames: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray:
    """Stage 2 over the motion, then each super-resolution model, window by window; video.mp4 at
    25 fps with the recording muxed in, at the last model's size (or `size`), and beside it stage
    2's paste masks (video.paste.npz, `vlogger.core.paste_mask`). Steps and noise
    correlation apply to every model, guidance to stage 2 (super-resolution uses its
    checkpoint's). `stream`: video.mp4 is a fragmented mp4 written as the frames are made (the
    same frames, encoded alike); `on_frames` gets every chunk of frames as it is made. Returns
    the frames written (T, S, S, 3) uint8."""
    models = load_cascade(checkpoint, list(superres), sampling.device)
    for path, m in zip([checkpoint, *superres], models, strict=True):
        require_drivable(m, str(path), result)
    if sampling.noise_correlation is not None:
        for m in models:
            m.cfg["sampling"]["noise_correlation"] = sampling.noise_correlation
    masks: list[np.ndarray] = []  # where stage 2 started from the pasted warp: the border scores'
    chunks = video_chunks(result, models, sampling, size, masks)
    path = out / "video.mp4"
    if not stream:
        video = np.concatenate([_seen(c, on_frames) for c in chunks])
        write_paste_mask(path, np.concatenate(masks))
        write_video(video, result, path)
        return video
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    with Mp4Writer(path, result.fps, *VIDEO_CODEC, result.audio, 16000, fragmented=True) as writer:
        for c in chunks:
            writer.write(_seen(c, on_frames))
            parts.append(c)
    write_paste_mask(path, np.concatenate(masks))
    return np.concatenate(parts)


def _seen(chunk: np.ndarray, on_frames: Callable[[np.ndarray], None] | None) -> np.ndarray:
    if on_frames is not None:
        on_frames(chunk)
    return chunk
