"""Face crops the face metrics read, cut from tracked videos by the protocol's geometry."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
from scipy.ndimage import median_filter

from vlogger.evaluation.tracks import TrackedVideo


def syncnet_boxes(lmk: np.ndarray) -> np.ndarray:
    """(T, 4) x0, y0, x1, y1: the face-mesh box per frame, median-smoothed over 5 frames."""
    lo, hi = lmk[..., :2].min(axis=1), lmk[..., :2].max(axis=1)
    return median_filter(np.concatenate([lo, hi], axis=1), size=(5, 1), mode="nearest")


def syncnet_crops(frames: np.ndarray, boxes: np.ndarray, size: int = 224) -> np.ndarray:
    """SyncNet's crop of each frame: for a box of half side s, the square [cx +- 1.4 s] x
    [cy - s, cy + 1.8 s], grey (110) outside the frame. The box is the face-mesh box, not S3FD's,
    which is the one known difference from the original pipeline (recorded in the protocol)."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for t, (frame, (x0, y0, x1, y1)) in enumerate(zip(frames, boxes, strict=True)):
        s = max(x1 - x0, y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        src = np.float32([[cx - 1.4 * s, cy - s], [cx + 1.4 * s, cy - s], [cx - 1.4 * s, cy + 1.8 * s]])
        dst = np.float32([[0, 0], [size, 0], [0, size]])
        m = cv2.getAffineTransform(src, dst)
        out[t] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(110, 110, 110))
    return out


def syncnet_crop_chunks(v: TrackedVideo, size: int = 224) -> Iterator[np.ndarray]:
    """The crops of a tracked video, decoded again chunk by chunk (its frames are not kept)."""
    boxes, start = syncnet_boxes(v.lmk), 0
    for chunk in v.source.chunks():
        yield syncnet_crops(chunk, boxes[start : start + len(chunk)], size)
        start += len(chunk)


# --- joonson/syncnet_python's pipeline (run_pipeline.py), for LSE's `reference` mode ---
MIN_TRACK, NUM_FAILED_DET, MIN_FACE_SIZE, IOU_THRES, MEDIAN_FRAMES, CROP_SCALE = 100, 25, 100, 0.5, 13, 0.4
JPEG_QUALITY = 95  # ffmpeg's -qscale:v 2, which the original writes its frames with, is about libjpeg's 95


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def face_tracks(detections: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame indices, (n, 4) boxes) per face track, as `track_shot` builds them from per-frame S3FD boxes:
    greedy chains of boxes overlapping the last one by IoU > 0.5 with gaps of at most 25 frames; tracks of
    more than 100 frames, boxes linearly interpolated over the gaps, kept when their mean side exceeds 100 px."""
    left = [list(d[:, :4]) for d in detections]
    tracks = []
    while True:
        frames, boxes = [], []
        for t, faces in enumerate(left):
            if frames and t - frames[-1] > NUM_FAILED_DET:
                break
            match = next((i for i, f in enumerate(faces) if not boxes or iou(f, boxes[-1]) > IOU_THRES), None)
            if match is not None:
                frames.append(t)
                boxes.append(faces.pop(match))
        if not frames:
            return tracks
        if len(frames) > MIN_TRACK:
            span = np.arange(frames[0], frames[-1] + 1)
            filled = np.stack([np.interp(span, frames, np.array(boxes)[:, j]) for j in range(4)], axis=1)
            if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > MIN_FACE_SIZE:
                tracks.append((span, filled))


def smoothed(boxes: np.ndarray) -> np.ndarray:
    """(n, 3) half size s, centre x, centre y per frame, each median-filtered over 13 frames (scipy medfilt,
    zero-padded at the ends as the original's `signal.medfilt`)."""
    from scipy.signal import medfilt

    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    x, y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([medfilt(v, MEDIAN_FRAMES) for v in (s, x, y)], axis=1)


def reference_crop(frame: np.ndarray, s: float, x: float, y: float, size: int = 224) -> np.ndarray:
    """`crop_video`'s crop: the frame padded with 110 by int(s (1 + 2 x 0.4)), the rows [y - s, y + 1.8 s] and
    columns [x - 1.4 s, x + 1.4 s] cut with int() truncation, resized (bilinear) to 224."""
    pad = int(s * (1 + 2 * CROP_SCALE))
    padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
    my, mx = y + pad, x + pad
    face = padded[
        int(my - s) : int(my + s * (1 + 2 * CROP_SCALE)),
        int(mx - s * (1 + CROP_SCALE)) : int(mx + s * (1 + CROP_SCALE)),
    ]
    return cv2.resize(face, (size, size))


def jpeg(frames: np.ndarray) -> np.ndarray:
    """Frames through a JPEG encode and decode, as the original's frames and crops pass through JPEG files."""
    quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    return np.stack([cv2.imdecode(cv2.imencode(".jpg", f, quality)[1], cv2.IMREAD_UNCHANGED) for f in frames])


def xvid_round_trip(crops: np.ndarray, fps: int, folder: str) -> np.ndarray:
    """Crops written as an XVID (MPEG-4 part 2) AVI by cv2.VideoWriter and read back, then through JPEG:
    what SyncNet reads in the original (crop_video writes the AVI, run_syncnet extracts JPEG frames)."""
    path = f"{folder}/crop.avi"
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"XVID"), fps, crops.shape[2:0:-1])
    for c in crops:
        out.write(np.ascontiguousarray(c))
    out.release()
    cap, back = cv2.VideoCapture(path), []
    while (ok_frame := cap.read())[0]:
        back.append(ok_frame[1])
    cap.release()
    if len(back) != len(crops):
        raise RuntimeError(
            f"XVID round trip gave {len(back)} frames for {len(crops)} (OpenCV without an MPEG-4 encoder?)"
        )
    return jpeg(np.stack(back))
