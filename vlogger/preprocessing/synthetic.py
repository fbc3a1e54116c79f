"""Shards of synthetic talking faces in seconds: no video to decode, no tracker, no ../shared.

The exact output of `vlogger preprocess` (shards, index.json with its data spec, params.npz from
the real face-mesh fit) for face-mesh parameters made up here: the jaw opens with the loudness of
a synthetic speech signal, the head sways, and each frame is the mesh rendered with its region
colours shaded by its surface coordinates. What the dataset, training and generation tests
train on, and a way to try the training loop on any machine. With `hands`, two hands gesture
below the face (raised with the speech's loudness, so gestures follow its beats), the right one
leaving the frame through its bottom for a second and coming back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlogger.body.control_video import ClipRenderer, params_slice
from vlogger.body.facemesh import FaceBasis, expression_shape
from vlogger.body.fitting import MeshModel, load_body, make_fitter
from vlogger.body.geometry import apply_similarity, euler_to_matrix
from vlogger.body.hands import _TEMPLATE
from vlogger.body.params import to_npz_bytes
from vlogger.body.parts import part_params
from vlogger.body.render import controls_to_rgb
from vlogger.core.audio import to_flac
from vlogger.core.config import load_config
from vlogger.core.errors import UsageError
from vlogger.core.hands import empty_hands
from vlogger.core.spec import LEGACY_PARTS
from vlogger.core.video import encode_mp4
from vlogger.preprocessing.audio_features import audio_features
from vlogger.preprocessing.run import data_spec
from vlogger.preprocessing.sample import drive_signal, synth_speech
from vlogger.preprocessing.shards import Manifest, ShardSink, manifest_entry, merge_index, record_spec

JAW_SPREAD = 2.5  # the first basis component (the jaw) swings this many of its standard deviations


def synthetic_params(basis: FaceBasis, drive: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 478, 3) landmarks in crop pixels: jaw following `drive` in [0, 1], small other
    expressions, a head swaying a few degrees, the face filling the crop as preprocessing crops it."""
    n, k = len(drive), basis.n_components
    t = torch.arange(n, dtype=torch.float32) / 25.0
    spread = torch.as_tensor(basis.stddev, dtype=torch.float32)
    expr = 0.3 * spread * torch.as_tensor(rng.standard_normal((n, k)), dtype=torch.float32)
    expr = torch.as_tensor(np.cumsum(expr.numpy(), 0) / np.sqrt(np.arange(1, n + 1))[:, None], dtype=torch.float32)
    expr[:, 0] = JAW_SPREAD * spread[0] * (torch.as_tensor(drive) - 0.5)
    identity = torch.as_tensor(basis.mean) + 0.002 * torch.as_tensor(rng.standard_normal((478, 3)), dtype=torch.float32)
    phase = torch.as_tensor(rng.uniform(0, 2 * np.pi, 3), dtype=torch.float32)
    yaw, pitch, roll = (
        torch.deg2rad(a * torch.sin(2 * np.pi * f * t + p))
        for a, f, p in zip((12, 6, 4), (0.3, 0.5, 0.2), phase, strict=True)
    )
    rot = euler_to_matrix(yaw, pitch, roll)
    scale = torch.full((n,), 100.0 * size / 256)
    trans = torch.tensor([size / 2, 0.47 * size, 0.0]).expand(n, 3)
    return apply_similarity(expression_shape(identity, expr, basis), scale, rot, trans).numpy()


def synthetic_hands(drive: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 2, 21, 4) hand track in crop pixels (`vlogger.core.hands`): open hands below the chin
    (the person's left on the image right), lifted by `drive` in [0, 1] with a little tremble;
    the right hand drops out of the frame through frames [T/3, T/3 + 25) and comes back. A
    point is visible where it lies inside the frame."""
    n = len(drive)
    palm = 0.09 * size
    tremble = rng.standard_normal((n, 2)).cumsum(0) / np.sqrt(np.arange(1, n + 1))[:, None]
    lift = 0.12 * size * drive[:, None] + 0.01 * size * tremble  # (T, 2)
    x = np.array([0.72, 0.28]) * size
    y = 0.93 * size - lift
    y[n // 3 : n // 3 + 25, 1] += 0.5 * size  # the right hand leaves through the bottom
    out = np.zeros((n, 2, 21, 4), np.float32)
    for side, mirror in ((0, -1.0), (1, 1.0)):
        out[:, side, :, 0] = x[side] + mirror * palm * _TEMPLATE[:, 0]
        out[:, side, :, 1] = y[:, side, None] + palm * _TEMPLATE[None, :, 1]
    inside = (out[..., 0] >= 0) & (out[..., 0] < size) & (out[..., 1] >= 0) & (out[..., 1] < size)
    out[..., 3] = inside
    return out


def _hand_keys(params: dict) -> dict:
    return {k: params[k] for k in ("hands", "hand_visible") if k in params}


def render_frames(mesh: MeshModel, params: dict, size: int, parts: tuple[str, ...] = LEGACY_PARTS) -> np.ndarray:
    """(T, size, size, 3) uint8: region colours shaded by canonical surface coordinates (the
    hands drawn too with `parts` naming them)."""
    grey = np.full((size, size, 3), 128, np.uint8)
    renderer = ClipRenderer(mesh, grey, params_slice(params, 0, 1), size, parts=parts)
    strips = np.concatenate([controls_to_rgb(c).numpy() for c in renderer.controls(params, size)])
    semantic, coords = strips[:, :, :size].astype(np.float32), strips[:, :, size : 2 * size].astype(np.float32)
    return (0.6 * semantic + 0.4 * coords).round().astype(np.uint8)


def make_synthetic_shards(
    out: Path,
    clips: int = 3,
    seconds: float = 3.0,
    val_identities: Sequence[str] = ("synth_002",),
    overrides: Sequence[str] = (),
    seed: int = 0,
    hands: bool = False,
) -> dict:
    """Write `clips` synthetic clips of `seconds` into `out` as preprocessing would, with the
        preprocessing config `overrides` (e.g. `crop.size=64`, `crop.scale=3.0`); identities
        `synth_000`, ... each one clip, those named in `val_identities` in the val split; with
        `fit.body_model=smplx` (and `fit.model_path`) params.npz holds an SMPL-X fit; with `hands`
    the clips show gesturing hands (`synthetic_hands`). Returns the index."""
    cfg = load_config(None, "preprocess/default.yaml", [*overrides, "tracking.pose_stride=1"])
    fps, sr, size = cfg["ingest"]["fps"], cfg["ingest"]["sample_rate"], cfg["crop"]["size"]
    if cfg["fit"]["body_model"] not in ("facemesh", "smplx"):
        raise UsageError("synthetic shards carry face-mesh or SMPL-X parameters (fit.body_model)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the frames always show the face mesh; params.npz holds the configured body model's fit
    basis = FaceBasis.load(cfg["fit"]["basis"])
    mesh = load_body("facemesh", cfg["fit"]["basis"]).mesh
    mesh_fit, fit = make_fitter({**cfg["fit"], "body_model": "facemesh"}), make_fitter(cfg["fit"])
    spec = data_spec(cfg)
    record_spec(out, 0, spec)
    manifest = Manifest(out, 0)
    sinks = {s: ShardSink(out, f"{s}-000", 1 << 30, 1000, manifest) for s in ("train", "val")}
    mel = audio_features(cfg["audio_features"], sr)
    n = round(seconds * fps)
    drawn = ("face", "body", "hands") if hands and "hands" in spec.parts else LEGACY_PARTS
    for i in range(clips):
        identity = f"synth_{seed + i:03d}"
        rng = np.random.default_rng(seed + i)
        audio = synth_speech(n / fps, rng, sr)
        lmk = synthetic_params(basis, drive_signal(audio, n, fps, sr), size, rng).astype(np.float32)
        pose = np.zeros((n, 33, 4), np.float32)  # no body: every pose point unseen
        face = mesh_fit(lmk, pose, size)
        params = face if cfg["fit"]["body_model"] == "facemesh" else fit(lmk, pose, size)
        track = synthetic_hands(drive_signal(audio, n, fps, sr), size, rng) if hands else empty_hands(n)
        params |= part_params(spec.parts, lmk, "mediapipe478", track, params)
        split = "val" if identity in val_identities else "train"
        meta = {
            "fps": fps,
            "n_frames": n,
            "sample_rate": sr,
            "size": size,
            "crop_boxes": [[0.0, 0.0, float(size), float(size)]] * n,
            "landmark_format": "mediapipe478",
            "mel": {**cfg["audio_features"], "rows_per_frame": mel.rows_per_frame(fps)},
            "quality": {"sync_offset": 0.0, "sync_confidence": 1.0},
            "identity": identity,
            "split": split,
            "tracker": "synthetic",
            "body_model": cfg["fit"]["body_model"],
            "config_version": cfg["version"],
        }
        enc = cfg["encode"]
        frames = render_frames(mesh, face | _hand_keys(params), size, drawn)
        sample = {
            "__key__": f"{identity}-000",
            "mp4": encode_mp4(frames, fps, enc["codec"], enc["crf"], enc["preset"]),
            "flac": to_flac(audio, sr),
            "mel.npy": mel.for_frames(audio, n, fps),
            "lmk.npy": lmk,
            "pose.npy": pose,
            **({"hands.npy": track} if "hands" in spec.parts else {}),
            "params.npz": to_npz_bytes(params),
            "json": meta,
        }
        sinks[split].add(manifest_entry(f"{identity}.synthetic", [sample], []), [sample])
    for sink in sinks.values():
        sink.commit()
    return merge_index(out)
