"""What a recipe reads from a dataset's official files: the source videos and the clips cut from them.

Each dataset states its spans and crops in its own units (HDTF: mm:ss and pixels of the authors'
resolution; CelebV-HQ: seconds and fractions of the frame; TalkingHead-1KH: frame numbers inside
one-minute chunks and pixels of the frame size it lists). A `Clip` keeps them as given and
resolves them against the downloaded video, whose size and frame rate are only known then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_YOUTUBE_ID = re.compile(r"(?:[?&]v=|youtu\.be/|/shorts/|/embed/)([\w-]{11})")


def youtube_id(url: str) -> str | None:
    """The 11-character video id of a YouTube URL (`watch?v=`, `youtu.be/`, `shorts/`), else None."""
    m = _YOUTUBE_ID.search(url)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Source:
    """One video to download once, however many clips come from it."""

    id: str  # the key downloads, mirrors and file names use (a YouTube id)
    url: str
    height: int | None = None  # the resolution the authors worked at (HDTF), for --resolution authors


@dataclass(frozen=True)
class Crop:
    """A window (left, top, right, bottom) in a frame of `ref` = (width, height); a width of None
    scales both axes by the height (HDTF states only the authors' height). `square` shrinks the
    window to a centred square once in pixels (CelebV-HQ's rule)."""

    box: tuple[float, float, float, float]
    ref: tuple[float | None, float]
    square: bool = False

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) inside a width x height frame, even-sized for yuv420."""
        sy = height / self.ref[1]
        sx = sy if self.ref[0] is None else width / self.ref[0]
        left, top, right, bottom = self.box
        x0, y0, x1, y1 = left * sx, top * sy, right * sx, bottom * sy
        if self.square:
            half = min(x1 - x0, y1 - y0) / 2
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
        x0, y0 = max(0, round(x0)), max(0, round(y0))
        x1, y1 = min(width, round(x1)), min(height, round(y1))
        return x0, y0, x0 + (x1 - x0) // 2 * 2, y0 + (y1 - y0) // 2 * 2


@dataclass(frozen=True)
class Clip:
    """One clip of the dataset, named by its own convention.

    The span is `start`-`end` seconds of the source, or, where `frames` is set (TalkingHead-1KH),
    frames [first, stop) counted from `start` seconds at the source's frame rate.
    """

    name: str  # file stem by the dataset's convention (Radio11_0, M2Ohb0FAaJU_1, ...)
    folder: str  # sub-folder of clips/ ("" for none)
    source: str  # Source.id
    start: float
    end: float | None
    identity: str  # the person, for splits by person
    crop: Crop | None = None
    frames: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # kept in the manifest as given

    @property
    def rel(self) -> str:
        """Path under clips/: what preprocessing's identities file is keyed by."""
        return f"{self.folder}/{self.name}.mp4" if self.folder else f"{self.name}.mp4"

    def span(self, fps: float) -> tuple[float, float]:
        """(start, end) in seconds of the source video."""
        if self.frames is None:
            assert self.end is not None
            return self.start, self.end
        return self.start + self.frames[0] / fps, self.start + self.frames[1] / fps


@dataclass
class Recipe:
    """A dataset's sources (by id, in the files' order), its clips (in the files' order), and the
    annotated clips it cannot make ({"clip", "video", "reason"}), which a fetch reports as failed."""

    sources: dict[str, Source]
    clips: list[Clip]
    invalid: list[dict] = field(default_factory=list)

    def by_source(self) -> dict[str, list[Clip]]:
        groups: dict[str, list[Clip]] = {s: [] for s in self.sources}
        for c in self.clips:
            groups[c.source].append(c)
        return {s: cs for s, cs in groups.items() if cs}
