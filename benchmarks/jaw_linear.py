"""How much of the jaw can a linear map from the audio features predict on people it never saw?

A reference line for stage 1's audio dependence (benchmarks.audio_dependence): ridge regression
from the clip-centred log-mel rows of frames k-6..k+6 (stage 1's own input and context) to the
first expression coefficient, fitted on the training clips stage 1 reads (those within
`--max-sync-offset` frames), scored as the correlation of prediction and tracked jaw per held-out
clip, for a range of ridge strengths. It predicts the conditional mean, as a one-step sampler does;
a sampled motion correlates less.

    python -m benchmarks.jaw_linear --train data/zoo/corpus_shards data/zoo/clips_shards \
        --test data/zoo/corpus_shards [--split test] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

from benchmarks.audio_dependence import MIN_FRAMES, held_out_clips
from benchmarks.common import machine, publish
from vlogger.core.linear_audio import clip_features, fit_ridge
from vlogger.datasets.shards import clip_arrays, shard_urls
from vlogger.datasets.windows import trains_on

CONTEXT = 6  # frames either side: stage 1's data.mel_context
STRENGTHS = (1e2, 1e3, 1e4, 1e5, 1e6)


def features(clip: dict, rows_per_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, (2 * CONTEXT + 1) * rows * n_mels) clip-centred rows with context, (frames,) jaw."""
    jaw = clip["params.npz"]["expression"][:, 0].astype(np.float64)
    return clip_features(clip["mel.npy"], len(jaw), rows_per_frame, CONTEXT), jaw


Pairs = list[tuple[np.ndarray, np.ndarray]]


def correlations(pairs: Pairs, w: np.ndarray, bias: float) -> list[float]:
    """Per clip: correlation of the ridge prediction with the tracked jaw."""
    return [float(np.corrcoef(f @ w + bias, j)[0, 1]) for f, j in pairs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", required=True, help="shard folders whose train split is fitted")
    ap.add_argument("--test", nargs="+", required=True, help="shard folders whose --split is scored")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-sync-offset", type=int, default=3, help="stage 1's data.max_sync_offset")
    ap.add_argument("--append", help="append the table to this markdown file")
    args = ap.parse_args()
    members = ["params.npz", "mel.npy"]
    train = [
        c
        for root in args.train
        for c in clip_arrays(shard_urls(root, "train"), members)
        if trains_on(c["json"], set(), args.max_sync_offset)
    ]
    test = held_out_clips(args.test, args.split, members)
    rows = test[0]["json"]["mel"]["rows_per_frame"]
    fitted = [features(c, rows) for c in train]
    scored = [features(c, rows) for c in test]
    x = np.concatenate([f for f, _ in fitted])
    y = np.concatenate([j - j.mean() for _, j in fitted])
    lines = [
        f"#### Linear audio -> jaw on held-out people, {datetime.date.today()} ({machine()})",
        "",
        f"`python -m benchmarks.jaw_linear --train {' '.join(args.train)} --test {' '.join(args.test)} "
        f"--split {args.split}`: ridge on {len(train)} training clips ({len(y)} frames), "
        f"{len(test)} {args.split} clips of >= {MIN_FRAMES} frames.",
        "",
        "| ridge strength | training clips' median r | held-out median r | held-out per clip |",
        "|---|---|---|---|",
    ]
    for lam in STRENGTHS:
        w, bias = fit_ridge(x, y, lam)  # the line stage 1's model.jaw_prior fits
        held, own = correlations(scored, w, bias), correlations(fitted, w, bias)
        per_clip = " ".join(f"{v:.2f}" for v in held)
        lines.append(f"| {lam:g} | {np.median(own):.2f} | **{np.median(held):.2f}** | {per_clip} |")
    publish([*lines, "", f"Held-out clips in order: {', '.join(c['key'] for c in test)}.", ""], args.append)


if __name__ == "__main__":
    main()
