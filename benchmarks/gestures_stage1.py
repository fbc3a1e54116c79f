"""Does a stage-1 checkpoint gesture and blink like the people it never saw? (issue 21's must-show)

For every clip of a held-out split (`--split test`, as benchmarks.audio_dependence), stage 1
samples the motion from the clip's first frame (its hands and eyes included), which `from_motion`
decodes with the checkpoint's hand basis into params, compared with the clip's tracked params
through the array-level maths of vlogger.evaluation.gestures:
- gesture magnitude (`wrist_spread`): temporal std of the wrists in % of the reference frame's
  face height (params `scale`: crop pixels per forehead-to-chin), sampled with the clip's own
  audio (median over seeds) beside the truth's, on clips whose truth shows a hand (wrist and
  middle knuckle) on >= MIN_FRAMES frames; the others have no gesture figures;
- beat alignment (`speech_beat_alignment`): wrist-speed peaks against the clip's speech onsets,
  minus the shifted-onset null (0: chance), of the motion sampled from the clip's own audio
  (median over seeds; the truth's beside) and, per other person, of the motion sampled from
  their audio, scored against this clip's speech it did not hear (both cut to the shorter
  clip, seed 0): a pair is won when the own audio's motion aligns better (nan loses);
- blink rate (`blinks_per_minute`): blinks per minute of the mean eyelid aperture of both eyes,
  sampled (median over seeds) beside the truth's, on every clip.

    python -m benchmarks.gestures_stage1 RUN/checkpoints/last.ckpt --shards data/zoo/corpus_shards \
        [--split test] [--seeds 3] [--guidance G] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from benchmarks.audio_dependence import MIN_FRAMES, heading, held_out, held_out_parser, other_people, sample_motion
from benchmarks.common import publish
from vlogger.body.hands import WRIST, hand_seen
from vlogger.body.motion import MotionLayout, from_motion, reference_of
from vlogger.core.audio import from_flac
from vlogger.core.errors import UsageError
from vlogger.core.spec import DataSpec
from vlogger.evaluation.gestures import blinks_per_minute, speech_beat_alignment, wrist_speed, wrist_spread

Sampler = Callable[[dict, np.ndarray, int, int], torch.Tensor]
"""(clip, mel rows, frames, seed) -> (frames, D) motion for the clip's person from those mel rows."""


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@dataclass(frozen=True)
class Parts:
    """The hands and eyes of one clip's params: wrists (T, 2, 2) in % of the reference's face
    height, the hands' `seen` (T, 2), the mean eyelid aperture (T,); None for a part not there."""

    wrists: np.ndarray | None
    seen: np.ndarray | None
    aperture: np.ndarray | None

    @classmethod
    def of(cls, params: dict, face: float) -> Parts:
        """`params` (tracked or decoded), `face` the reference's scale (pixels per face height)."""
        hands = "hands" in params
        return cls(
            _np(params["hands"])[:, :, WRIST, :2] * (100 / face) if hands else None,
            hand_seen(_np(params["hand_visible"])) if hands else None,
            _np(params["eyelid"]).mean(-1) if "eyelid" in params else None,
        )

    def magnitude(self) -> float:
        return wrist_spread(self.wrists, self.seen) if self.wrists is not None else float("nan")

    def beats(self, audio: np.ndarray, sample_rate: int, fps: int, frames: int) -> float:
        """Beat alignment of the first `frames` frames with the speech of `audio`'s first `frames`."""
        if self.wrists is None:
            return float("nan")
        speed = wrist_speed(self.wrists[:frames], self.seen[:frames])
        return speech_beat_alignment(speed, audio[: frames * sample_rate // fps], fps, sample_rate)

    def blink_rate(self, fps: int) -> float:
        return blinks_per_minute(self.aperture, fps) if self.aperture is not None else float("nan")


@dataclass(frozen=True)
class ClipGestures:
    """One clip's figures, (truth, sampled) pairs; nan where the model lacks the part, and the
    gesture figures nan on a clip whose truth shows no hand on MIN_FRAMES frames."""

    frames: int
    hand_frames: int  # truth frames showing a hand
    magnitude: tuple[float, float]  # % of face height
    beats: tuple[float, float]  # sampled: from the clip's own audio
    pairs: tuple[tuple[float, float], ...]  # per other person: (own audio's, other audio's) on the shorter span
    blink_rate: tuple[float, float]  # per minute

    @property
    def qualifies(self) -> bool:
        return self.hand_frames >= MIN_FRAMES

    @property
    def wins(self) -> int:
        return sum(own > other for own, other in self.pairs)


def score_clip(
    clip: dict, others: list[dict], sample: Sampler, layout: MotionLayout, fps: int, seeds: int
) -> ClipGestures:
    """The figures of one clip (params.npz, mel.npy, flac) against the people of `others`,
    stage 1 given by `sample` and `layout` (its `motion_layout()`, the hand basis in it)."""
    p = clip["params.npz"]
    n, ref = len(p["expression"]), reference_of(p, 0)
    face = float(p["scale"][0])
    audio, sr = from_flac(clip["flac"])
    truth = Parts.of(p, face)
    own = [Parts.of(from_motion(sample(clip, clip["mel.npy"], n, s), ref, layout), face) for s in range(seeds)]
    hand_frames = int(truth.seen.any(1).sum()) if truth.seen is not None else 0
    magnitude = beats = (float("nan"),) * 2
    pairs = []
    if layout.hands and hand_frames >= MIN_FRAMES:
        magnitude = truth.magnitude(), float(np.median([o.magnitude() for o in own]))
        beats = truth.beats(audio, sr, fps, n), float(np.median([o.beats(audio, sr, fps, n) for o in own]))
        for other in others:
            m = min(n, len(other["params.npz"]["expression"]))
            swapped = Parts.of(from_motion(sample(clip, other["mel.npy"], m, 0), ref, layout), face)
            pairs.append((own[0].beats(audio, sr, fps, m), swapped.beats(audio, sr, fps, m)))
    blinks = truth.blink_rate(fps), float(np.median([o.blink_rate(fps) for o in own]))
    return ClipGestures(n, hand_frames, magnitude, beats, tuple(pairs), blinks)


def _cell(x: float, digits: int = 2) -> str:
    return "—" if np.isnan(x) else f"{x:.{digits}f}"


def row(key: str, c: ClipGestures) -> str:
    other = np.median([x for _, x in c.pairs]) if c.pairs else float("nan")
    wins = f"{c.wins}/{len(c.pairs)}" if c.pairs else "—"
    return (
        f"| {key} | {c.frames} | {c.hand_frames} | {_cell(c.magnitude[0], 1)} | {_cell(c.magnitude[1], 1)} | "
        f"{_cell(c.beats[0])} | {_cell(c.beats[1])} | {_cell(other)} | {wins} | "
        f"{_cell(c.blink_rate[0], 1)} | {_cell(c.blink_rate[1], 1)} |"
    )


def summary(scores: list[ClipGestures]) -> str:
    """The paragraph under the table: the medians the issue asks for."""
    hands = [c for c in scores if c.qualifies]
    pairs = [p for c in hands for p in c.pairs]
    wins = sum(c.wins for c in hands)

    def med(xs) -> str:
        xs = [x for x in xs if not np.isnan(x)]
        return _cell(float(np.median(xs))) if xs else "—"

    blink_err = [abs(c.blink_rate[1] - c.blink_rate[0]) for c in scores]
    return (
        f"{len(hands)}/{len(scores)} clips show a hand on >= {MIN_FRAMES} frames. On those: gesture magnitude "
        f"(% of face height) sampled **{med(c.magnitude[1] for c in hands)}** vs. truth "
        f"{med(c.magnitude[0] for c in hands)}; beat alignment above chance with the own audio "
        f"**{med(c.beats[1] for c in hands)}** vs. other people's audio **{med(x for _, x in pairs)}** "
        f"(truth {med(c.beats[0] for c in hands)}); own audio wins **{wins}/{len(pairs)}** pairs. Blink rate "
        f"(per minute) sampled {med(c.blink_rate[1] for c in scores)} vs. truth "
        f"{med(c.blink_rate[0] for c in scores)}, median |sampled - truth| **{med(blink_err)}** over "
        f"{len(scores)} clips."
    )


def main() -> None:
    args = held_out_parser(__doc__).parse_args()
    module, clips = held_out(args)
    layout = module.motion_layout()
    if not (layout.hands or layout.eyes):
        raise UsageError(f"{args.checkpoint}: a model of {', '.join(module.parts)}: no hands or eyes to score")
    DataSpec.of_shards(args.shards).model_parts(list(module.parts), f"{args.checkpoint}'s model.parts")
    rows, scores = [], []
    for clip in clips:
        others = other_people(clip, clips)
        scores.append(score_clip(clip, others, partial(sample_motion, module), layout, module.spec.fps, args.seeds))
        rows.append(row(clip["key"], scores[-1]))
        print(rows[-1], flush=True)
    lines = [
        *heading("gestures and blinks", "gestures_stage1", module, args, clips),
        "| clip | frames | hand frames | magnitude truth | sampled | beats truth | own audio | other audio (median) "
        "| own wins | blinks/min truth | sampled |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        summary(scores),
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
