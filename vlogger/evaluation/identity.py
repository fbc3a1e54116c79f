"""Identity similarity of generated frames to a reference image, one metric per face-recognition backbone.

`csim` is ArcFace (insightface's buffalo_l recognition model, 512-d, weights from the zoo): what papers report as
CSIM. `identity_dlib` is dlib's 128-d ResNet, which installs with its weights from PyPI and so runs anywhere
offline; it is not CSIM and keeps its own name. The two give cosines on different scales and are never merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
from torchmetrics import Metric

from vlogger.core.errors import UsageError
from vlogger.evaluation.metric import EvalVideo, Measured, Needs, SampledFrames, VideoMetric
from vlogger.evaluation.tracks import VideoSource
from vlogger.zoo import resolve

# insightface's 112x112 ArcFace alignment template (`arcface_dst`), in image order: left eye, right eye, nose tip,
# left mouth corner, right mouth corner ("left" = smaller x, i.e. the subject's right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)
ARCFACE_SIZE = 112

# mediapipe face-mesh indices averaged into each template point. Eye centres are eye-corner midpoints, not the iris,
# so that gaze does not move the crop.
MESH_FIVE_POINTS: tuple[tuple[int, ...], ...] = ((33, 133), (362, 263), (1,), (61,), (291,))

DLIB_HINT = "the dlib identity backbone needs `pip install dlib-bin face-recognition-models`"


class IdentityBackbone(Protocol):
    """A face-recognition embedder; `name` travels with every score so different backbones are never compared."""

    name: str
    dim: int

    def embed(self, frames_rgb: np.ndarray) -> np.ndarray:
        """(N, dim) L2-normalised embeddings of (N, H, W, 3) uint8 RGB frames; NaN rows where no face was found."""


def make_backbone(name: str) -> IdentityBackbone:
    """The backbone named by the evaluation protocol's `identity.backbone`."""
    if name == "dlib":
        return DlibBackbone()
    if name == "arcface":
        return ArcFaceBackbone()
    raise ValueError(f"unknown identity backbone {name!r} (dlib | arcface)")


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so a dot product is the cosine; NaN rows stay NaN."""
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def dlib_models_dir() -> Path:
    """Folder of the .dat files shipped by face-recognition-models, found without importing that package: its
    `__init__` imports pkg_resources, which recent setuptools no longer ships."""
    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(DLIB_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibBackbone:
    """dlib's face-recognition ResNet: HOG face detector, 5-point shape predictor, 128-d descriptor.

    dlib calls two faces the same person when the Euclidean distance of their raw descriptors is below 0.6. Here
    descriptors are L2-normalised and compared by cosine; for unit vectors ||a - b||^2 = 2 - 2 cos. Raw descriptors
    are not unit length (norm 1.3-1.6 on real faces), so dlib's threshold is cos ~ 1 - 0.6^2 / (2 r^2), about 0.91
    at the typical norm r = 1.45.
    """

    name = "dlib"
    dim = 128
    # HOG finds faces of 80 px and up: frames with a short side under 400 px (generated at 128-256 px) are upsampled
    # once before detecting.
    upsample_below = 400

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as e:
            raise ImportError(DLIB_HINT) from e
        models = dlib_models_dir()
        self._detect = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._describe = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, frames_rgb: np.ndarray) -> np.ndarray:
        out = np.full((len(frames_rgb), self.dim), np.nan, np.float32)
        for i, frame in enumerate(frames_rgb):
            frame = np.ascontiguousarray(frame)
            boxes = self._detect(frame, int(min(frame.shape[:2]) < self.upsample_below))
            if boxes:
                box = max(boxes, key=lambda b: b.area())
                out[i] = self._describe.compute_face_descriptor(frame, self._shape(frame, box))
        return l2_normalise(out)


def five_points(lmk: np.ndarray) -> np.ndarray:
    """(..., 5, 2) ArcFace alignment points from (..., 468 or 478, >=2) face-mesh landmarks in pixels."""
    return np.stack([lmk[..., list(idx), :2].mean(axis=-2) for idx in MESH_FIVE_POINTS], axis=-2)


def face_mesh_points(frames_rgb: np.ndarray) -> np.ndarray:
    """(N, 5, 2) ArcFace points in pixels, NaN where face mesh finds no face. Static mode: frames are independent."""
    import mediapipe as mp  # heavy; imported where used

    out = np.full((len(frames_rgb), 5, 2), np.nan, np.float32)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        for i, frame in enumerate(frames_rgb):
            res = mesh.process(np.ascontiguousarray(frame))
            if res.multi_face_landmarks:
                h, w = frame.shape[:2]
                lmk = np.array([(p.x * w, p.y * h) for p in res.multi_face_landmarks[0].landmark], np.float32)
                out[i] = five_points(lmk)
    return out


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, shift; no reflection) taking src points onto dst:
    the fit insightface aligns with. With points as complex numbers, dst ~ a src + b has a closed-form solution."""
    s, d = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    a = np.vdot(s - s.mean(), d - d.mean()) / np.vdot(s - s.mean(), s - s.mean())
    b = d.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def align_face(frame_rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 112x112 ArcFace crop whose five points best match the template."""
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    return cv2.warpAffine(frame_rgb, m, (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=0)


def arcface_blob(crops_rgb: np.ndarray) -> np.ndarray:
    """(N, 3, 112, 112) float32 network input from (N, 112, 112, 3) uint8 RGB crops, as insightface's ArcFaceONNX
    feeds buffalo_l: RGB channel order (it swaps its BGR input) and (x - 127.5) / 127.5."""
    return ((crops_rgb.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)


class ArcFaceBackbone:
    """insightface's ArcFace recognition model (buffalo_l `w600k_r50.onnx`, 512-d) on onnxruntime; face-mesh points
    aligned to the ArcFace template. Only models that normalise outside the graph (buffalo_l's) are supported."""

    name = "arcface"
    dim = 512

    def __init__(self, model_path: str | Path | None = None) -> None:
        import onnxruntime as ort  # heavy; imported where used

        path = resolve("arcface_w600k_r50") if model_path is None else Path(model_path)
        self._session = ort.InferenceSession(str(path), providers=ort.get_available_providers())
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        if list(inp.shape[1:]) != [3, ARCFACE_SIZE, ARCFACE_SIZE] or out.shape[-1] != self.dim:
            raise ValueError(
                f"{path}: expected an ArcFace model (N, 3, 112, 112) -> (N, 512), got {inp.shape} -> {out.shape}"
            )
        self._input = inp.name
        self._batch = inp.shape[0] if isinstance(inp.shape[0], int) else None  # None: any batch size

    def embed(self, frames_rgb: np.ndarray) -> np.ndarray:
        points = face_mesh_points(frames_rgb)
        found = ~np.isnan(points[:, 0, 0])
        out = np.full((len(frames_rgb), self.dim), np.nan, np.float32)
        if found.any():
            crops = np.stack([align_face(f, p) for f, p in zip(frames_rgb[found], points[found], strict=True)])
            out[found] = self.embed_aligned(crops)
        return out

    def embed_aligned(self, crops_rgb: np.ndarray) -> np.ndarray:
        """(N, 512) L2-normalised embeddings of (N, 112, 112, 3) uint8 RGB crops already aligned to the template."""
        blob = arcface_blob(crops_rgb)
        step = self._batch or len(blob)
        feats = [self._session.run(None, {self._input: blob[i : i + step]})[0] for i in range(0, len(blob), step)]
        return l2_normalise(np.concatenate(feats).astype(np.float32))


@dataclass(frozen=True)
class IdentityCounts:
    """One video's contribution: cosine sum over the frames with a face, and what was missed."""

    cosine_sum: float
    frames: int
    no_face_frames: int
    no_face_reference: bool


class IdentitySimilarity(VideoMetric):
    """Mean cosine similarity of generated frames to their reference image under one backbone
    (`csim` / `identity_dlib` below fix which; the score is reported under the metric's name).

    The mean is over all scored frames of all videos. Frames without a face are counted in
    `no_face_frames` and not scored; a reference without a face leaves its video unscored
    (counted in `no_face_references`), so a batch evaluation carries on.
    """

    name, higher_is_better, backbone_name = "identity", True, ""
    needs = Needs(reference_image=True)

    def __init__(self, backbone: IdentityBackbone, frames: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backbone, self.frames = backbone, frames
        for name in ("cosine_sum", "frame_count", "no_face_frames", "no_face_references"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @classmethod
    def from_protocol(cls, protocol: dict) -> IdentitySimilarity:
        if cls.backbone_name not in protocol["identity"]["backbones"]:
            raise UsageError(f"backbone {cls.backbone_name} is not in the protocol's identity.backbones")
        return cls(make_backbone(cls.backbone_name), protocol["identity"]["frames"])

    def _indices(self, n_frames: int) -> range:
        return range(0, n_frames, max(1, n_frames // self.frames))

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> SampledFrames:
        return SampledFrames(self._indices(gen.n_frames))

    def measure(self, video: EvalVideo, frames: SampledFrames) -> Measured:
        return self.similarity(video.reference_image, frames.gen(self._indices(video.gen.n_frames)))

    def similarity(self, reference_rgb: np.ndarray, frames: np.ndarray) -> Measured:
        """reference_rgb (H, W, 3) uint8; frames (T, H', W', 3) uint8 of the generated video. The
        row has the score under the metric's name (mean over frames with a face), or why there is none."""
        ref = self.backbone.embed(reference_rgb[None])[0]
        if np.isnan(ref).any():
            why = f"{self.backbone.name} found no face in the reference image"
            return Measured({f"{self.name}_skipped": why}, IdentityCounts(0.0, 0, 0, True))
        cos = self.backbone.embed(frames) @ ref
        found = ~np.isnan(cos)
        counts = IdentityCounts(float(cos[found].sum()), int(found.sum()), int((~found).sum()), False)
        if not found.any():
            why = f"{self.backbone.name} found no face in any of {len(frames)} frames"
            return Measured({f"{self.name}_skipped": why}, counts)
        return Measured({self.name: float(cos[found].mean())}, counts)

    def update(self, measured: Measured) -> None:
        counts: IdentityCounts = measured.value
        if counts.no_face_reference:
            self.no_face_references += 1
            return
        self.cosine_sum += counts.cosine_sum
        self.frame_count += counts.frames
        self.no_face_frames += counts.no_face_frames

    def compute(self) -> dict[str, float]:
        if self.frame_count == 0:
            raise ValueError(
                f"no video could be scored (no_face_frames {int(self.no_face_frames)}, "
                f"no_face_references {int(self.no_face_references)})"
            )
        return {self.name: float(self.cosine_sum / self.frame_count)}

    def merge_state(self, incoming_state: dict | Metric) -> None:
        """Refuse to pool the states of another backbone: their cosines are on different scales."""
        if isinstance(incoming_state, IdentitySimilarity) and incoming_state.backbone.name != self.backbone.name:
            raise ValueError(
                f"cannot merge identity scores of backbone {incoming_state.backbone.name!r} into {self.backbone.name!r}"
            )
        super().merge_state(incoming_state)


class CSIM(IdentitySimilarity):
    """CSIM as papers report it: ArcFace (buffalo_l w600k_r50) cosine to the reference image."""

    name, backbone_name = "csim", "arcface"
    needs = Needs(reference_image=True, weights=("arcface_w600k_r50",))


class IdentityDlib(IdentitySimilarity):
    """dlib's face-recognition cosine: offline, but on another scale than CSIM (not comparable)."""

    name, backbone_name = "identity_dlib", "dlib"
