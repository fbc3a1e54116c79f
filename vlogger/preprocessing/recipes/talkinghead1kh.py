"""TalkingHead-1KH (Wang et al., CVPR 2021) from its official lists (tcwang0509/TalkingHead-1KH, `data_list/`).

`SPLIT_video_ids.txt`: one YouTube id a line. `SPLIT_video_tubes.txt`: `NAME, H, W, S, E, L, T, R, B`
a line, NAME = `ID_CCCC`, the CCCC-th one-minute chunk the official scripts cut the video into;
frames S..E (inclusive) of that chunk; the window L..R x T..B in a frame of H x W pixels. A clip
is named as the official crop script names it: `NAME_S{S}_E{E}_L{L}_T{T}_R{R}_B{B}.mp4`; the
identity is the video id. The official chunks are stream copies cut at the first keyframe
after each minute; here chunk C starts at exactly C minutes, so a clip can start up to one
keyframe interval (typically under 2 s) earlier than the official one.
"""

from __future__ import annotations

from pathlib import Path

from vlogger.core.errors import BadInput
from vlogger.preprocessing.recipes.spec import Clip, Crop, Recipe, Source

CHUNK_SECONDS = 60.0


def parse(tubes: Path) -> Recipe:
    """The clips of a SPLIT_video_tubes.txt; its SPLIT_video_ids.txt beside it, when present, lists
    the videos to fetch, as in the official scripts (tubes of other videos are left out)."""
    tubes = Path(tubes)
    if not tubes.is_file():
        raise BadInput(tubes, "tubes file not found (want data_list/SPLIT_video_tubes.txt)")
    clips = []
    for n, line in enumerate(tubes.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            name, (h, w, s, e, left, top, right, bottom) = fields[0], map(int, fields[1:9])
            vid, chunk = name.rsplit("_", 1)
            offset = int(chunk) * CHUNK_SECONDS
        except ValueError as err:
            raise BadInput(tubes, f"line {n}: want NAME, H, W, S, E, L, T, R, B: {line!r} ({err})") from err
        if e < s or right <= left or bottom <= top:
            raise BadInput(tubes, f"line {n}: empty span or window: {line!r}")
        clip = f"{name}_S{s}_E{e}_L{left}_T{top}_R{right}_B{bottom}"
        crop = Crop((left, top, right, bottom), (w, h))
        clips.append(Clip(clip, "", vid, offset, None, vid, crop, frames=(s, e + 1)))
    ids_file = tubes.with_name(tubes.name.replace("_video_tubes", "_video_ids"))
    if ids_file.is_file():
        order = [i.strip() for i in ids_file.read_text(encoding="utf-8-sig").splitlines() if i.strip()]
    else:
        order = [c.source for c in clips]
    sources = {vid: Source(vid, f"https://www.youtube.com/watch?v={vid}") for vid in dict.fromkeys(order)}
    return Recipe(sources, [c for c in clips if c.source in sources])
