"""CelebV-HQ (Zhu et al., ECCV 2022) from its official `celebvhq_info.json` (CelebV-HQ/CelebV-HQ).

`{"meta_info": ..., "clips": {KEY: {"ytb_id", "duration": {"start_sec", "end_sec"},
"bbox": {"top", "bottom", "left", "right"} (fractions of the frame), ...}}}`. A clip is KEY.mp4;
its crop is the official script's: the box grown by 0.02 of the frame on each side (inside the
frame), then the centred square of its shorter side in pixels. The identity is the clip's
`ytb_id` (the dataset names no person; one YouTube video is taken as one person).
"""

from __future__ import annotations

import json
from pathlib import Path

from vlogger.core.errors import BadInput
from vlogger.preprocessing.recipes.spec import Clip, Crop, Recipe, Source

EXPAND = 0.02  # the official download_and_process.py's margin


def parse(path: Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "annotation file not found")
    try:
        clips_json = json.loads(path.read_text(encoding="utf-8-sig"))["clips"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise BadInput(path, f"not a celebvhq_info.json (want a 'clips' object): {e}") from e
    sources: dict[str, Source] = {}
    clips = []
    for key, val in clips_json.items():
        try:
            vid, d, b = val["ytb_id"], val["duration"], val["bbox"]
            start, end = float(d["start_sec"]), float(d["end_sec"])
            top, bottom, left, right = (float(b[k]) for k in ("top", "bottom", "left", "right"))
        except (KeyError, TypeError, ValueError) as e:
            raise BadInput(path, f"clip {key}: missing or bad field {e}") from e
        if end <= start:
            raise BadInput(path, f"clip {key}: end_sec {end} is not after start_sec {start}")
        box = (max(left - EXPAND, 0), max(top - EXPAND, 0), min(right + EXPAND, 1), min(bottom + EXPAND, 1))
        sources.setdefault(vid, Source(vid, f"https://www.youtube.com/watch?v={vid}"))
        clips.append(Clip(key, "", vid, start, end, vid, Crop(box, (1.0, 1.0), square=True)))
    return Recipe(sources, clips)
