"""Drift over time on a real clip: stable as recorded, flat when frozen, rising when the face's colour drifts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from vlogger.core.config import load_config
from vlogger.evaluation.drift import Drift, ShrunkFrames, block_indices
from vlogger.evaluation.identity import make_backbone
from vlogger.evaluation.metric import EvalVideo
from vlogger.evaluation.tracks import eval_tracker, open_video, track_source, tracked


@pytest.fixture(scope="module")
def recorded(clips_dir):
    """upperbody_kim_7s (7.4 s) tracked, with the drift reader fed as the runner feeds it, in 2-s blocks."""
    pytest.importorskip("dlib", reason="the drift test uses the dlib identity backbone")
    protocol = load_config(None, "eval/protocol.yaml", ["drift.block_seconds=2.0"])
    metric = Drift.from_protocol(protocol)
    source = open_video(clips_dir / "upperbody_kim_7s.mp4", protocol)
    reader = metric.reader(source, None)
    track = track_source(source, eval_tracker(protocol), lambda start, chunk: reader.add(start, chunk, None))
    return metric, EvalVideo("kim", tracked(source, track, None, protocol)), reader


def _variant(reader: ShrunkFrames, change) -> ShrunkFrames:
    out = ShrunkFrames.__new__(ShrunkFrames)
    out.size, out.scale = reader.size, reader.scale
    out.kept = ({i: change(i, f) for i, f in reader.kept[0].items()}, {})
    return out


def test_blocks_cover_whole_blocks_after_a_reference_second():
    cfg = {"frames_per_block": 5, "reference_seconds": 1.0, "block_seconds": 2.0}
    blocks = block_indices(185, 25, cfg)
    assert len(blocks) == 4 and blocks[0].tolist() == [0, 6, 12, 18, 24] and blocks[-1].tolist()[-1] == 149


def test_drift_is_flat_as_recorded_and_rises_with_a_colour_drift(recorded):
    metric, video, reader = recorded
    row = metric.measure(video, reader).row
    assert min(row["drift_identity_dlib_blocks"]) > 0.9 and max(row["drift_colour_blocks"]) < 3

    def tint(i, frame):  # warmer by 4 b* per second
        lab = rgb2lab(frame / 255.0)
        lab[..., 2] += 4 * i / 25
        return (lab2rgb(lab) * 255).round().astype(np.uint8)

    tinted = metric.measure(video, _variant(reader, tint)).row
    assert tinted["drift_colour_slope"] > max(60, 5 * abs(row["drift_colour_slope"])), (tinted, row)  # ΔE00 / min
    assert tinted["drift_colour_blocks"][-1] > 5 > 3 * row["drift_colour_blocks"][-1]

    still = replace(video, gen=replace(video.gen, lmk=np.repeat(video.gen.lmk[:1], video.gen.n_frames, axis=0)))
    frozen = metric.measure(still, _variant(reader, lambda i, f: reader.kept[0][0])).row  # the first frame, always
    assert max(frozen["drift_colour_blocks"]) < 0.1 and min(frozen["drift_identity_dlib_blocks"]) > 0.999


def test_a_video_shorter_than_two_blocks_says_so(recorded):
    metric, video, reader = recorded
    short = Drift(make_backbone("dlib"), {**metric.cfg, "block_seconds": 4.0}, 25)
    assert short.measure(video, reader).row == {"drift_skipped": "shorter than two blocks of 4.0 s"}
