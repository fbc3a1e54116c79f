"""Border scores: does the edge where the warped reference was pasted show in the video?

A hard paste leaves a seam along the paste contour: a ridge of image gradient that the real frame does
not have there. Per frame, E = |∇I|² (Sobel, per channel in [0, 1], mean over channels); the band is the
pixels within w of the contour on either side (w = `border.band` x the frame side, >= 1 px), the contour
being the edge of the paste mask that generation writes beside the video (`vlogger.core.paste_mask`;
the frame's own edge is no contour).

- `border_score` (needs the ground truth): mean E of the generated frames on the band / mean E of the
  truth on the same pixels, over the video. 1 = as sharp as the real frame there; a seam is > 1; below
  1 the band is smoother than the truth (blur, which `cpbd` measures).
- `border_ridge` (no truth: photos of new people): mean E on the band / mean E on the two parallel bands
  beside it (w..3w inside and outside), all on the generated frames. A seam is a ridge (> 1); a real
  edge along the contour (a jaw line) also raises it, so read it beside the same score of the
  ground truth or the warped-reference baseline on the same items.
"""

from __future__ import annotations

import cv2
import numpy as np

from vlogger.core.errors import BadInput
from vlogger.core.paste_mask import read_paste_mask
from vlogger.evaluation.metric import EvalVideo, FrameReader, Needs
from vlogger.evaluation.motion import VideoMean
from vlogger.evaluation.tracks import VideoSource


def gradient_energy(frame: np.ndarray) -> np.ndarray:
    """(H, W) squared Sobel gradient magnitude of an (H, W, 3) uint8 frame, mean over channels, per
    unit of intensity in [0, 1] (reflected at the frame's edge, so the edge adds none)."""
    f = frame.astype(np.float32) / 255
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8
    return (gx**2 + gy**2).mean(axis=-1)


def contour_bands(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(band, flanks) of an (H, W) bool mask: the pixels within `width` of its contour on either side,
    and those between `width` and 3 x `width` from it on either side. Both empty for an empty or full mask."""
    if not mask.any() or mask.all():
        empty = np.zeros_like(mask, dtype=bool)
        return empty, empty
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest pixel outside
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest one inside
    d = np.where(mask, inside, outside)  # 1 next to the contour on either side
    return d <= width, (d > width) & (d <= 3 * width)


def band_width(frame_hw: tuple[int, int], fraction: float) -> int:
    return max(1, round(fraction * max(frame_hw)))


class BandEnergy(FrameReader):
    """Sums of the generated frames' gradient energy on the paste contour's band and its flanks (and,
    paired, of the reference's on the band), frame by frame as they stream past. The paste masks are
    read from beside the generated video and scaled to its decoded size (nearest)."""

    def __init__(self, gen: VideoSource, fraction: float, ref: VideoSource | None = None) -> None:
        self.error: str | None = None
        if ref is not None and ref.size != gen.size:
            self.error = f"frame sizes differ: {gen.size[::-1]} vs {ref.size[::-1]}"
            return
        self.width, self.hw = band_width(gen.size[::-1], fraction), gen.size[::-1]
        self.indices = gen.indices
        self.sums = {"band": 0.0, "flanks": 0.0, "ref_band": 0.0, "n_band": 0, "n_flanks": 0}
        try:
            self.masks = read_paste_mask(gen.path)
        except BadInput as e:
            self.masks, self.error = None, str(e)
            return
        if self.masks is None:
            self.error = f"no paste mask beside {gen.path.name}"
        elif len(self.masks) <= int(gen.indices.max()):
            self.error = f"{len(self.masks)} paste masks for a video of {int(gen.indices.max()) + 1} frames"

    def _bands(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        mask = self.masks[self.indices[i]].astype(np.uint8)
        if mask.shape != self.hw:
            mask = cv2.resize(mask, self.hw[::-1], interpolation=cv2.INTER_NEAREST)
        return contour_bands(mask > 0, self.width)

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        if self.error is not None or gen is None:  # a single reader also sees the reference's frames alone
            return
        n = len(gen) if ref is None else min(len(gen), len(ref))
        for k in range(n):
            band, flanks = self._bands(start + k)
            e = gradient_energy(gen[k])
            self.sums["band"] += float(e[band].sum())
            self.sums["flanks"] += float(e[flanks].sum())
            self.sums["n_band"] += int(band.sum())
            self.sums["n_flanks"] += int(flanks.sum())
            if ref is not None:
                self.sums["ref_band"] += float(gradient_energy(ref[k])[band].sum())

    def _checked(self) -> dict:
        if self.error is not None:
            raise ValueError(self.error)
        if self.sums["n_band"] == 0:
            raise ValueError("no paste contour in any frame (mask empty or full)")
        return self.sums

    def ridge(self) -> float:
        s = self._checked()
        if s["n_flanks"] == 0 or s["flanks"] == 0:
            raise ValueError("no gradient beside the paste contour")
        return (s["band"] / s["n_band"]) / (s["flanks"] / s["n_flanks"])

    def against_reference(self) -> float:
        s = self._checked()
        if s["ref_band"] == 0:
            raise ValueError("the reference is flat along the paste contour")
        return s["band"] / s["ref_band"]


class PairedBandEnergy(BandEnergy):
    paired = True


class BorderScore(VideoMean):
    """Gradient energy on the paste contour's band, generated / ground truth (module docstring)."""

    name, higher_is_better = "border_score", False
    needs = Needs(reference_video=True, paste_mask=True)

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> PairedBandEnergy:
        return PairedBandEnergy(gen, self.protocol["border"]["band"], ref)

    def score(self, video: EvalVideo, frames: PairedBandEnergy) -> float:
        return frames.against_reference()


class BorderRidge(VideoMean):
    """Gradient energy on the paste contour's band / on the bands beside it, no truth needed (module docstring)."""

    name, higher_is_better = "border_ridge", False
    needs = Needs(paste_mask=True)

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> BandEnergy:
        return BandEnergy(gen, self.protocol["border"]["band"])

    def score(self, video: EvalVideo, frames: BandEnergy) -> float:
        return frames.ridge()
