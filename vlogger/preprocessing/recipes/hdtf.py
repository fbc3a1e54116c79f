"""HDTF (Zhang et al., CVPR 2021) from its official annotation files (MRzzm/HDTF, `HDTF_dataset/`).

Per source group xx in RD (radio), WDA and WRA (US politicians), whitespace-separated lines:
  xx_video_url.txt        Name URL                       (some files start with a byte-order mark)
  xx_annotion_time.txt    Name.mp4 mm:ss-mm:ss [...]     clip k of Name.mp4 is Name_k.mp4
  xx_crop_wh.txt          Name_k.mp4 min_w w min_h h     a window in the authors' resolution
  xx_crop_ratio.txt       Name_k.mp4 r                   kept in the manifest (the official steps crop with crop_wh)
  xx_resolution.txt       Name.mp4 height                the authors' resolution (0: unknown)

A person is the video name without its trailing number (AmyKlobuchar0 and AmyKlobuchar1 are one
politician) in WDA/WRA; each RD video is its own person (the hosts are not named). Names whose
URLs are one YouTube video are one person (WhipJimClyburn and JamesClyburn1). Videos with a URL
but no spans (RD's Radio24) define no clip. A span that starts before the previous one of its
video ends (WRA's MittRomney: 08:10-08:30 00:33-08:53) is reported, not cut: it would repeat
frames of another clip, and which time was meant is a guess.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from vlogger.core.errors import BadInput
from vlogger.preprocessing.recipes.spec import Clip, Crop, Recipe, Source, youtube_id

GROUPS = ("RD", "WDA", "WRA")
# the benchmark's held-out people per group (configs/benchmarks/hdtf-test.yaml): about 8 % of each
HOLDOUT = {"RD": 4, "WDA": 10, "WRA": 6}
_TIME = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")


def _rows(path: Path, min_fields: int) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a whitespace-separated file; BOM, blank lines and trailing blanks ignored."""
    if not path.is_file():
        raise BadInput(path, "annotation file not found")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_fields:
            raise BadInput(path, f"line {n}: expected at least {min_fields} fields, got {line!r}")
        rows.append((n, fields))
    return rows


def _seconds(text: str) -> float:
    m = _TIME.fullmatch(text)
    if not m:
        raise ValueError(text)
    h, mm, ss = m.groups()
    return int(h or 0) * 3600 + int(mm) * 60 + float(ss)


def parse_spans(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Video name (without .mp4) -> its spans in seconds, from an xx_annotion_time.txt."""
    spans = {}
    for n, (name, *times) in _rows(path, 2):
        try:
            pairs = [tuple(_seconds(t) for t in span.split("-")) for span in times]
        except ValueError as e:
            raise BadInput(path, f"line {n}: bad time {e} (want mm:ss-mm:ss)") from e
        if any(len(p) != 2 or p[1] <= p[0] for p in pairs):
            raise BadInput(path, f"line {n}: a span is not start-end with end after start: {' '.join(times)}")
        spans[name.removesuffix(".mp4")] = pairs
    return spans


def person(group: str, name: str) -> str:
    """The person in video `name` of `group` (see the module docstring)."""
    return name if group == "RD" else name.rstrip("0123456789")


def parse(folder: Path) -> Recipe:
    """Every annotated clip of the three groups in `folder` (the unchanged official files)."""
    folder = Path(folder)
    sources: dict[str, Source] = {}
    clips: list[Clip] = []
    invalid: list[dict] = []
    by_id: dict[str, str] = {}  # YouTube id -> the person of the first name seen with it
    for group in GROUPS:
        urls = {f[0]: (n, f[1]) for n, f in _rows(folder / f"{group}_video_url.txt", 2)}
        spans = parse_spans(folder / f"{group}_annotion_time.txt")
        heights = {f[0].removesuffix(".mp4"): int(f[1]) for _, f in _rows(folder / f"{group}_resolution.txt", 2)}
        windows = {
            f[0].removesuffix(".mp4"): [int(x) for x in f[1:5]] for _, f in _rows(folder / f"{group}_crop_wh.txt", 5)
        }
        ratios = {f[0].removesuffix(".mp4"): float(f[1]) for _, f in _rows(folder / f"{group}_crop_ratio.txt", 2)}
        for name, pairs in spans.items():
            if name not in urls:
                raise BadInput(
                    folder / f"{group}_video_url.txt", f"no URL for {name} (annotated in {group}_annotion_time.txt)"
                )
            line, url = urls[name]
            vid = youtube_id(url)
            if vid is None:
                raise BadInput(folder / f"{group}_video_url.txt", f"line {line}: not a YouTube URL: {url}")
            height = heights.get(name) or None
            sources.setdefault(vid, Source(vid, url, height))
            who = by_id.setdefault(vid, person(group, name))
            for k, (start, end) in enumerate(pairs):
                clip = f"{name}_{k}"
                if k and start < pairs[k - 1][1]:
                    reason = (
                        f"annotation: span {k} starts at {start:g} s, before span {k - 1} ends ({pairs[k - 1][1]:g} s)"
                    )
                    invalid.append({"clip": clip, "video": vid, "reason": reason})
                    continue
                crop = None
                if clip in windows and height:
                    min_w, w, min_h, h = windows[clip]
                    crop = Crop((min_w, min_h, min_w + w, min_h + h), (None, height))
                extra = {"video": name, "group": group, "crop_ratio": ratios.get(clip), "crop_wh": windows.get(clip)}
                clips.append(Clip(clip, group, vid, start, end, who, crop, extra=extra))
    return Recipe(sources, clips, invalid)


def benchmark_selection(recipe: Recipe) -> list[dict]:
    """The hdtf-test items: per group, the HOLDOUT[group] people first in the order of
    sha1("hdtf-test:" + person); for each, clip 0 of their first video by name; 10 s scored from
    second 1 (or to the clip's end), frame 0 as the reference, the clip's own audio."""
    first: dict[str, Clip] = {}
    for c in sorted(recipe.clips, key=lambda c: (c.extra["video"], c.name)):
        first.setdefault(c.identity, c)
    items = []
    for group in GROUPS:
        people = sorted({c.identity for c in first.values() if c.folder == group})
        people.sort(key=lambda p: hashlib.sha1(f"hdtf-test:{p}".encode()).hexdigest())
        for who in sorted(people[: HOLDOUT[group]]):
            c = first[who]
            assert c.end is not None
            items.append(
                {
                    "id": f"{group}_{c.name}",
                    "identity": who,
                    "video": f"clips/{c.rel}",
                    "start": 1.0,
                    "end": round(min(11.0, c.end - c.start), 3),
                    "reference": {"frame": 0.0},
                    "audio": "own",
                }
            )
    return items
