"""Per-frame face (and upper-body) landmarks for one video, streamed frame by frame.

Two backends behind one interface: mediapipe (face mesh 478 points + pose 33 points + both
hands' 21 points, runs offline, default) and face-alignment (68 points, for users who have its
weights; no body, no hands).
Coordinates are returned in pixels of the frame that was passed in.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np

from vlogger.core.errors import UsageError
from vlogger.core.hands import N_HAND_POINTS, POSE_WRISTS, assign_sides, empty_hands, fill_between, hand_box


@dataclass
class Track:
    """Landmarks of one video at the working frame rate; NaN where nothing was found."""

    landmark_format: str
    face: np.ndarray  # (T, K, 3) x, y, z in pixels
    pose: np.ndarray  # (T, 33, 4) x, y, z, visibility; NaN when the backend has no body
    face_count: np.ndarray  # (T,) large faces seen by the detector; -1 where not checked
    face_score: np.ndarray  # (T,) detector confidence of the main face; NaN where not checked
    hands: np.ndarray  # (T, 2, 21, 4) person's left, right hand (vlogger.core.hands); visibility 0 = unseen

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.face[:, 0, 0])


@dataclass
class _Buffers:
    face: list = field(default_factory=list)
    pose: list = field(default_factory=list)
    count: list = field(default_factory=list)
    score: list = field(default_factory=list)
    hands: list = field(default_factory=list)  # (2, 21, 4), all NaN where the hand model did not run


_NATIVE_NOISE = (b"W0000 ", b"I0000 ", b"INFO: Created TensorFlow Lite", b"WARNING: All log messages before absl")


def filter_native_logs() -> None:
    """Route this process's fd 2 through a thread that drops mediapipe's C++ start-up lines.

    Its graphs log set-up chatter from their own threads straight to fd 2, where no Python
    logging setting reaches; everything else (progress bars included) passes on as it comes.
    Call once per process.
    """
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        while chunk := os.read(read_fd, 65536):
            kept = [ln for ln in chunk.splitlines(keepends=True) if not ln.lstrip(b"\r").startswith(_NATIVE_NOISE)]
            os.write(real, b"".join(kept))

    threading.Thread(target=pump, daemon=True).start()


def check_backend(cfg: dict) -> None:
    """Fail early, with what to install, if the configured backend cannot run here.

    mediapipe is only imported (its graphs log noisily and must not be built in the parent);
    face-alignment is built, since its weights are what is usually missing.
    """
    if cfg["backend"] == "mediapipe":
        try:
            import mediapipe  # noqa: F401
        except ImportError as e:
            raise UsageError("tracking.backend=mediapipe needs `pip install 'vlogger[preprocess]'`") from e
    else:
        make_tracker(cfg)


def tracker_class(backend: str) -> type[MediapipeTracker | FaceAlignmentTracker]:
    """The tracker class of `tracking.backend` (its `landmark_format` is known without building it)."""
    classes = {"mediapipe": MediapipeTracker, "face_alignment": FaceAlignmentTracker}
    if backend not in classes:
        raise UsageError(f"unknown tracking backend {backend!r} (mediapipe | face_alignment)")
    return classes[backend]


def make_tracker(cfg: dict) -> MediapipeTracker | FaceAlignmentTracker:
    """The tracker named by `tracking.backend` in the preprocess config."""
    return tracker_class(cfg["backend"])(cfg)


def count_large_faces(boxes: list[tuple[float, float]], ratio: float) -> int:
    """Faces whose area (w*h) is at least `ratio` of the largest one."""
    if not boxes:
        return 0
    areas = np.array([w * h for w, h in boxes])
    return int((areas >= ratio * areas.max()).sum())


def detect_hands(graph, frame: np.ndarray, pose: np.ndarray | None, min_vis: float) -> np.ndarray:
    """(2, 21, 4) the hands mediapipe's Hands `graph` finds in the box around the arms of `pose`
    (33, 4) (frame pixels), sides assigned, visibility 1 for points inside the frame; none seen
    (visibility 0, NaN points) when the pose saw no wrist above `min_vis`."""
    out = np.full((2, N_HAND_POINTS, 4), np.nan, np.float32)
    out[..., 3] = 0
    if pose is None or not np.nanmax(pose[list(POSE_WRISTS), 3], initial=0) > min_vis:
        return out
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = hand_box(pose, w, h)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return out
    r = graph.process(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    if not r.multi_hand_landmarks:
        return out
    # video mode sometimes returns a third hand (a stale track): keep the two most confident
    best = sorted(range(len(r.multi_handedness)), key=lambda i: -r.multi_handedness[i].classification[0].score)[:2]
    pts = np.array([[[p.x, p.y, p.z] for p in r.multi_hand_landmarks[i].landmark] for i in best], np.float32)
    pts = pts * (x1 - x0, y1 - y0, x1 - x0) + (x0, y0, 0)  # frame pixels
    labels = [r.multi_handedness[i].classification[0].label for i in best]
    sides = assign_sides(pts[:, 0, :2], labels, pose, min_vis)
    for p, side in zip(pts, sides, strict=True):
        inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
        out[side] = np.concatenate([p, inside[:, None]], 1)
    return out


class MediapipeTracker:
    """mediapipe 0.10.21 solutions: FaceMesh (video mode) + Pose every k-th frame + detector +
    Hands every `hand_stride`-th frame where the last pose saw a wrist, in the box around the
    pose's arms (video mode: the palm detector runs only when a hand is lost; skipped frames are
    interpolated by `finish`)."""

    landmark_format = "mediapipe478"

    def __init__(self, cfg: dict):
        import mediapipe as mp  # heavy; imported where used

        # count_faces_every / pose_stride 0: no detector / no pose graph (evaluation reads neither)
        self._detector = None
        if cfg["count_faces_every"]:
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=cfg["min_detection_confidence"]
            )
        self._mp = mp
        self.cfg = cfg

    def start(self) -> None:
        """Fresh video-mode graphs: tracking state must not leak from one video to the next."""
        conf = self.cfg["min_detection_confidence"]
        sol = self._mp.solutions
        self._mesh = sol.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=conf,
            min_tracking_confidence=0.5,
        )
        self._pose = None
        if self.cfg["pose_stride"]:
            self._pose = sol.pose.Pose(static_image_mode=False, model_complexity=1, min_detection_confidence=conf)
        self._hands = None
        self._hand_stride = self.cfg["hand_stride"]
        if self._hand_stride:
            self._hands = sol.hands.Hands(
                static_image_mode=False, max_num_hands=2, model_complexity=0, min_detection_confidence=conf
            )
        self._last_pose = None
        self._buf = _Buffers()
        self._k = 0

    def step(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        scale = np.array([w, h, w], np.float32)
        res = self._mesh.process(frame)
        if res.multi_face_landmarks:
            pts = res.multi_face_landmarks[0].landmark
            self._buf.face.append(np.array([[p.x, p.y, p.z] for p in pts], np.float32) * scale)
        else:
            self._buf.face.append(None)
        pose = np.full((33, 4), np.nan, np.float32)
        if self._pose is not None and self._k % self.cfg["pose_stride"] == 0:
            r = self._pose.process(frame)
            if r.pose_landmarks:
                pose = np.array(
                    [[p.x * w, p.y * h, p.z * w, p.visibility] for p in r.pose_landmarks.landmark], np.float32
                )
            self._last_pose = pose
        self._buf.pose.append(pose)
        self._buf.hands.append(self._step_hands(frame))
        count, score = -1, np.nan
        if self._detector is not None and self._k % self.cfg["count_faces_every"] == 0:
            dets = self._detector.process(frame).detections or []
            boxes = [
                (d.location_data.relative_bounding_box.width, d.location_data.relative_bounding_box.height)
                for d in dets
            ]
            count = count_large_faces(boxes, self.cfg["second_face_ratio"])
            score = max((d.score[0] for d in dets), default=0.0)
        self._buf.count.append(count)
        self._buf.score.append(score)
        self._k += 1

    def _step_hands(self, frame: np.ndarray) -> np.ndarray:
        """(2, 21, 4) this frame's hands; all NaN when the hand model is not run on it. Frames
        whose last pose saw no wrist count as checked with no hand (close-ups cost nothing)."""
        if not self._hand_stride or self._k % self._hand_stride:
            return np.full((2, N_HAND_POINTS, 4), np.nan, np.float32)
        return detect_hands(self._hands, frame, self._last_pose, self.cfg["hand_wrist_visibility"])

    def finish(self) -> Track:
        self._mesh.close()
        if self._pose is not None:
            self._pose.close()
        if self._hands is not None:
            self._hands.close()
        return _to_track(self.landmark_format, 478, self._buf)


class FaceAlignmentTracker:
    """face-alignment's 68-point 3D landmarks; no body. Needs its weights (downloaded by the
    package on first use, or already in torch's hub cache)."""

    landmark_format = "fa68"

    def __init__(self, cfg: dict):
        try:
            import face_alignment
        except ImportError as e:
            raise UsageError("tracking.backend=face_alignment needs `pip install face-alignment`") from e
        self.cfg = cfg
        try:
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.THREE_D, device=cfg["face_alignment_device"], face_detector="blazeface"
            )
        except Exception as e:  # its weights come from the internet on first use
            raise UsageError(
                "face-alignment could not load its weights (it downloads them into torch's hub cache, "
                f"~/.cache/torch/hub/checkpoints, on first use; copy them there when offline): {e}"
            ) from e

    def start(self) -> None:
        self._buf = _Buffers()

    def step(self, frame: np.ndarray) -> None:
        faces = self._fa.get_landmarks_from_image(frame) or []
        boxes = [tuple(np.ptp(f[:, :2], axis=0)) for f in faces]
        main = int(np.argmax([w * h for w, h in boxes])) if faces else -1
        self._buf.face.append(np.asarray(faces[main], np.float32) if faces else None)
        self._buf.pose.append(np.full((33, 4), np.nan, np.float32))
        self._buf.hands.append(empty_hands(1)[0])
        self._buf.count.append(count_large_faces(boxes, self.cfg["second_face_ratio"]))
        self._buf.score.append(1.0 if faces else 0.0)

    def finish(self) -> Track:
        return _to_track(self.landmark_format, 68, self._buf)


def _to_track(fmt: str, k: int, buf: _Buffers) -> Track:
    empty = np.full((k, 3), np.nan, np.float32)
    face = np.stack([f if f is not None else empty for f in buf.face]) if buf.face else np.zeros((0, k, 3), np.float32)
    pose = np.stack(buf.pose) if buf.pose else np.zeros((0, 33, 4), np.float32)
    hands = np.stack(buf.hands) if buf.hands else empty_hands(0)
    hands = fill_between(hands, ~np.isnan(hands[:, 0, 0, 3]))
    return Track(fmt, face, pose, np.array(buf.count, np.int32), np.array(buf.score, np.float32), hands)


def interpolate_missing(x: np.ndarray) -> np.ndarray:
    """Fill NaN frames of (T, ...) by linear interpolation in time (edges hold the nearest)."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    ok = ~np.isnan(flat[:, 0])
    if ok.all() or not ok.any():
        return flat.reshape(x.shape)
    t = np.arange(len(x))
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, t[ok], flat[ok, j])
    return out.reshape(x.shape)
