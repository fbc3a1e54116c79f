"""Border scores of pasted warped references on a real clip (issue 17): the reconstruction baseline
(the warped reference pasted on the reference frame), the same paste on frames whose colours drifted
(truth x 0.85, what a weakly trained stage 2 does around the face) and on the truth itself, each with
the hard paste and stage 2's feathered one (model.paste_feather), at 64, 128 and 256 px.

The clip is tracked and fitted with today's default data spec, frames [25, 75) driven from frame 0;
scores as `vlogger.evaluation.border` computes them (band `border.band` of the protocol).

    python -m benchmarks.border_paste [--clip ../shared/data/clips/retalking_face5.mp4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from vlogger.body.control_video import ClipRenderer
from vlogger.core.config import load_config
from vlogger.evaluation.border import band_width, contour_bands, gradient_energy
from vlogger.generation.pipeline import BodyFiles, inference_config
from vlogger.generation.reconstruct import reconstruction, track_clips
from vlogger.preprocessing.run import default_spec


def scores(video: np.ndarray, truth: np.ndarray, masks: np.ndarray, width: int) -> tuple[float, float]:
    """(border_score, border_ridge) of a whole video, as the metrics sum them."""
    band_e = truth_e = flank_e = n_band = n_flank = 0.0
    for v, t, m in zip(video, truth, masks, strict=True):
        band, flanks = contour_bands(m, width)
        e = gradient_energy(v)
        band_e, flank_e = band_e + e[band].sum(), flank_e + e[flanks].sum()
        truth_e += gradient_energy(t)[band].sum()
        n_band, n_flank = n_band + band.sum(), n_flank + flanks.sum()
    return band_e / truth_e, (band_e / n_band) / (flank_e / n_flank)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default="../shared/data/clips/retalking_face5.mp4")
    args = ap.parse_args()
    spec, files = default_spec(), BodyFiles()
    sample = track_clips(Path(args.clip), inference_config(spec, files))[0]
    rec = reconstruction(sample, spec, files, 0, 25, 75)
    res, ref = rec.motion, rec.motion.reference
    band = load_config(None, "eval/protocol.yaml")["border"]["band"]
    feather = load_config(None, "train/video.yaml")["model"]["paste_feather"]
    print("| px | pasted on | hard: score | hard: ridge | feathered: score | feathered: ridge |")
    print("|---|---|---|---|---|---|")
    for size in (64, 128, 256):
        truth = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in rec.ground_truth])
        still = cv2.resize(ref.crop, (size, size), interpolation=cv2.INTER_AREA)
        t = torch.from_numpy(truth).permute(0, 3, 1, 2).float() / 255
        grounds = {
            "reference frame (baseline)": torch.from_numpy(still).permute(2, 0, 1).float()[None] / 255,
            "truth x 0.85": t * 0.85,
            "truth": t,
        }
        renderer = ClipRenderer(res.body.mesh, ref.crop, ref.params, size)
        pasted: dict = {}
        masks, i = [], 0
        for c in renderer.controls(res.params, int(res.params["size"])):
            n = len(c.stacked)
            for name, ground in grounds.items():
                g = ground if len(ground) == 1 else ground[i : i + n]
                for kind, radius in (("hard", 0.0), ("feathered", feather * size)):
                    frames = (c.paste(g, radius) * 255).round().byte().permute(0, 2, 3, 1).numpy()
                    pasted.setdefault((name, kind), []).append(frames)
            masks.append(c.mask[:, 0].numpy() > 0.5)
            i += n
        masks = np.concatenate(masks)
        width = band_width((size, size), band)
        for name in grounds:
            hard = scores(np.concatenate(pasted[name, "hard"]), truth, masks, width)
            soft = scores(np.concatenate(pasted[name, "feathered"]), truth, masks, width)
            print(f"| {size} | {name} | {hard[0]:.2f} | {hard[1]:.2f} | {soft[0]:.2f} | {soft[1]:.2f} |")
        print(f"| {size} | (the truth itself) | {1:.2f} | {scores(truth, truth, masks, width)[1]:.2f} | | |")


if __name__ == "__main__":
    main()
