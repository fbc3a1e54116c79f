"""Reference analysis (VLOGGER step 1): one photo -> the training crop, landmarks and 3D fit.

The photo is cropped exactly as preprocessing crops a clip (configs/preprocess/default.yaml
`crop`), so stage 1 and stage 2 see a reference like the ones they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vlogger.body.fitting import Fitter
from vlogger.body.parts import part_params
from vlogger.core.crop import crop_boxes, crop_frame, to_crop_coords
from vlogger.core.errors import BadInput
from vlogger.core.hands import empty_hands
from vlogger.core.spec import LEGACY_PARTS
from vlogger.core.tracking import count_large_faces, detect_hands


@dataclass
class ReferenceImage:
    crop: np.ndarray  # (S, S, 3) uint8 RGB
    lmk: np.ndarray  # (478, 3) crop pixels
    pose: np.ndarray  # (33, 4) crop pixels + visibility
    params: dict  # body-model parameters of the one frame (T = 1)


def read_image(path: Path) -> np.ndarray:
    """RGB of a photo, or of a video's first frame (so a clip can serve as its own reference)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is not None:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    try:
        import av

        with av.open(str(path)) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
    except Exception as e:
        raise BadInput(path, "cannot read the image (missing, not an image or video, or corrupt)") from e


def track_image(
    path: Path, image: np.ndarray, tracking: dict, hands: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """478 face-mesh points, 33 pose points and (with `hands`) both hands (2, 21, 4) (source
    pixels) of the one person in the photo."""
    import mediapipe as mp

    sol = mp.solutions
    h, w = image.shape[:2]
    conf = tracking["min_detection_confidence"]
    with sol.face_detection.FaceDetection(model_selection=1, min_detection_confidence=conf) as det:
        dets = det.process(image).detections or []
    boxes = [(d.location_data.relative_bounding_box.width, d.location_data.relative_bounding_box.height) for d in dets]
    if count_large_faces(boxes, tracking["second_face_ratio"]) > 1:
        raise BadInput(path, f"{len(dets)} faces found; the reference photo must show one person")
    with sol.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        res = mesh.process(image)
    if not res.multi_face_landmarks:
        raise BadInput(path, "no face found in the reference photo")
    lmk = np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark], np.float32)
    pose = np.full((33, 4), np.nan, np.float32)
    with sol.pose.Pose(static_image_mode=True, model_complexity=1, min_detection_confidence=conf) as body:
        r = body.process(image)
    if r.pose_landmarks:
        pose = np.array([[p.x * w, p.y * h, p.z * w, p.visibility] for p in r.pose_landmarks.landmark], np.float32)
    found = empty_hands(1)[0]
    if hands:
        with sol.hands.Hands(static_image_mode=True, max_num_hands=2, min_detection_confidence=conf) as graph:
            found = detect_hands(graph, image, pose, tracking["hand_wrist_visibility"])
    return lmk, pose, found


def analyse_reference(
    path: str | Path, preprocess_cfg: dict, fit: Fitter, parts: tuple[str, ...] = LEGACY_PARTS
) -> ReferenceImage:
    """Crop, landmarks and the body model's fit of a reference photo, with the params of the
    optional `parts` (a data spec's: hands, eyes); BadInput names the file."""
    path = Path(path)
    image = read_image(path)
    lmk, pose, hands = track_image(path, image, preprocess_cfg["tracking"], "hands" in parts)
    c = preprocess_cfg["crop"]
    inside = (image.shape[1], image.shape[0]) if c["keep_inside"] else None
    box = crop_boxes(lmk[None], preprocess_cfg["ingest"]["fps"], c["scale"], c["shift_down"], 0.0, inside)
    crop = crop_frame(image, box[0], c["size"])
    lmk_c = to_crop_coords(lmk[None], box, c["size"])
    pose_c = to_crop_coords(pose[None], box, c["size"])
    params = fit(lmk_c, pose_c, c["size"])
    hands_c = to_crop_coords(hands.reshape(1, -1, 4), box, c["size"]).reshape(1, *hands.shape)
    params |= part_params(parts, lmk_c, "mediapipe478", hands_c.astype(np.float32), params)
    return ReferenceImage(crop, lmk_c[0], pose_c[0], params)
