"""Stage 1's gestures and blinks on held-out people (benchmarks.gestures_stage1): the array-level
maths of vlogger.evaluation.gestures on series made by hand, the per-clip figures of a sampler
that returns the truth (they equal the truth's) or holds the hands and lids still, and the whole
benchmark (and its sibling benchmarks.audio_dependence) on a tiny stage-1 model trained a few
steps on synthetic shards with hands."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from benchmarks import audio_dependence, gestures_stage1
from benchmarks.gestures_stage1 import score_clip
from vlogger.body.hand_basis import fit_hand_basis
from vlogger.body.motion import MotionLayout, reference_of, to_motion
from vlogger.datasets.shards import all_shard_urls, clip_arrays
from vlogger.evaluation import gestures
from vlogger.preprocessing.sample import synth_speech

FPS, SR, T = 25, 16000, 250  # 10 s
ALL = ("face", "body", "hands", "eyes")


def _wrists(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 2) both wrists at x (T,) (the right one 3 units further), y still; all seen."""
    w = np.zeros((len(x), 2, 2))
    w[:, 0, 0], w[:, 1, 0] = x, x + 3
    return w, np.ones((len(x), 2), bool)


def test_wrists_moving_on_the_speech_onsets_align_and_moving_between_them_do_not():
    audio = synth_speech(T / FPS, np.random.default_rng(0), SR)
    onsets = gestures.speech_onsets(audio, T, FPS, SR)
    assert len(onsets) >= 10
    t = np.arange(T)[:, None]

    def strokes(at: np.ndarray) -> np.ndarray:  # each stroke fastest on its frame
        return np.tanh((t - at[None]) / 1.5).sum(1)

    between = (onsets[:-1] + onsets[1:]) // 2
    on = gestures.speech_beat_alignment(gestures.wrist_speed(*_wrists(strokes(onsets))), audio, FPS, SR)
    off = gestures.speech_beat_alignment(gestures.wrist_speed(*_wrists(strokes(between))), audio, FPS, SR)
    assert on > 0.3 and off < 0.1, (on, off)
    w, seen = _wrists(strokes(onsets))
    seen[:] = False  # hands never seen: no movement, no peaks
    assert (gestures.wrist_speed(w, seen) == 0).all()
    assert np.isnan(gestures.speech_beat_alignment(gestures.wrist_speed(w, seen), audio, FPS, SR))
    short = gestures.wrist_speed(*_wrists(strokes(onsets)))[:50]  # 2 s: too short to say
    assert np.isnan(gestures.speech_beat_alignment(short, audio, FPS, SR))


def test_wrist_spread_is_in_the_positions_units_over_the_frames_a_hand_is_seen():
    swing = 2 + 4 * np.sin(np.arange(T) / 5)  # std 4/sqrt(2) in x, 0 in y: mean over x and y 1.41
    w, seen = _wrists(swing)
    assert gestures.wrist_spread(w, seen) == pytest.approx(4 / np.sqrt(2) / 2, rel=0.02)
    w[:40, 1] = 1e3  # where the right hand is not seen, its positions do not count
    seen[:40, 1] = False
    assert gestures.wrist_spread(w, seen) == pytest.approx(4 / np.sqrt(2) / 2, rel=0.02)
    seen[:, 0] = False
    seen[41:, 1] = False  # the right hand on one frame only: no spread either
    assert np.isnan(gestures.wrist_spread(w, seen))


def test_blinks_counted_from_an_eyelid_series():
    lid = 0.3 + 0.01 * np.random.default_rng(0).standard_normal(200)  # 8 s of open eyes
    for start in (20, 90, 160):
        lid[start : start + 3] = 0.03
    lid[91:93] = 0.3  # reopened for two frames in the middle of a blink: still one
    lid[120:123] = 0.2  # half closed is no blink
    assert gestures.blink_starts(lid).tolist() == [20, 90, 160]
    assert gestures.blinks_per_minute(lid, FPS) == pytest.approx(22.5)
    assert gestures.blinks_per_minute(lid * 40, FPS) == pytest.approx(22.5)  # any unit
    assert gestures.blinks_per_minute(np.full(200, 0.3), FPS) == 0.0


@pytest.fixture(scope="module")
def hand_shards(tmp_path_factory):
    """Three 4 s synthetic clips whose hands rise with their speech's loudness (synth_002 in val)."""
    from vlogger.preprocessing.synthetic import make_synthetic_shards

    out = tmp_path_factory.mktemp("hand_shards")
    make_synthetic_shards(out, clips=3, seconds=4.0, overrides=["crop.size=64"], hands=True)
    return out


def test_a_sampler_of_the_truth_scores_as_the_truth_and_a_still_one_does_not(hand_shards):
    clips = list(clip_arrays(all_shard_urls(hand_shards), ["params.npz", "mel.npy", "flac"]))
    params = [c["params.npz"] for c in clips]
    for p in params:  # two blinks in 4 s: 30 a minute
        p["eyelid"][[30, 31, 70, 71]] = 0.02
    basis = fit_hand_basis([(p["hands"], p["hand_visible"]) for p in params], 4)
    layout = MotionLayout.of_parts(params[0]["expression"].shape[1], ALL, 4, basis)
    source = {id(c["mel.npy"]): c["params.npz"] for c in clips}

    def truth(clip: dict, mel: np.ndarray, n: int, seed: int) -> torch.Tensor:
        """The tracked motion of the clip whose mel rows these are, placed on `clip`'s reference."""
        return to_motion(source[id(mel)], reference_of(clip["params.npz"], 0), layout=layout)[:n]

    def still(clip: dict, mel: np.ndarray, n: int, seed: int) -> torch.Tensor:
        m = truth(clip, mel, n, seed)
        for part in (layout.hand_place, layout.eyelid):
            m[:, part] = m[:1, part]
        return m

    for i, clip in enumerate(clips):
        others = clips[:i] + clips[i + 1 :]
        c = score_clip(clip, others, truth, layout, FPS, seeds=2)
        assert c.frames == c.hand_frames == 100 and c.qualifies  # the left hand is always in view
        assert c.magnitude[0] == pytest.approx(c.magnitude[1], rel=1e-4) and 2 < c.magnitude[0] < 10
        assert c.beats[0] == pytest.approx(c.beats[1]) and c.beats[0] > 0.08  # the hands rise with the speech
        assert len(c.pairs) == 2 and c.wins == 2, c.pairs  # other people's hands follow other speech
        assert c.blink_rate == (30.0, 30.0)
        s = score_clip(clip, others, still, layout, FPS, seeds=1)
        assert s.magnitude[1] < 1e-3 and s.magnitude[0] == c.magnitude[0]
        assert np.isnan(s.beats[1]) and s.wins == 0 and s.blink_rate == (30.0, 0.0)


def test_the_held_out_benchmarks_on_a_tiny_stage1_model_with_hands_and_eyes(hand_shards, tmp_path, monkeypatch):
    from vlogger.core.config import load_config
    from vlogger.training.run import train_motion

    sets = [f"data.shards={hand_shards}", "data.val_identities=[synth_002]", "trainer.limit_val_batches=1"]
    sets += [f"logging.dir={tmp_path}", "logging.logger=csv", "logging.media_every_steps=0", "sampling.steps=2"]
    sets += ["model.width=32", "model.depth=2", "model.heads=2", "data.batch_size=4", "model.hand_components=4"]
    sets += ["trainer.max_steps=2", "trainer.val_every_steps=2"]
    ckpt = train_motion(load_config(None, "train/motion.yaml", sets))["last_checkpoint"]
    out = tmp_path / "results.md"
    argv = ["gestures_stage1", str(ckpt), "--shards", str(hand_shards), "--split", "train", "--seeds", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--append", str(out)])
    gestures_stage1.main()
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| synth_")]
    assert [r.split(" | ")[0] for r in rows] == ["| synth_000-000", "| synth_001-000"]  # the train split
    for r in rows:  # frames, hand frames, truth's and sampled magnitude (a barely trained model moves)
        cells = [x.strip() for x in r.strip("|").split("|")]
        assert cells[1] == cells[2] == "100" and float(cells[3]) > 2 and float(cells[4]) > 0
        assert cells[8] in ("0/1", "1/1") and float(cells[9]) == 0.0 and float(cells[10]) >= 0
    assert "2/2 clips show a hand on >= 50 frames" in text and "/2** pairs" in text
    # its sibling reads the same model's face and body beside its hands and eyes
    audio_dependence.main()
    assert out.read_text().count("| synth_000-000 | 100 |") == 2


def test_seed_agreement_tells_one_motion_from_independent_samples() -> None:
    """The diversity column: seeds that give the same jaw agree 1.0, independent jaws near 0, one seed nan."""
    g = torch.Generator().manual_seed(0)
    jaw = torch.randn(200, 3, generator=g)
    assert audio_dependence.seed_agreement([jaw, jaw.clone(), 2 * jaw]) == pytest.approx(1.0)
    independent = [torch.randn(200, 3, generator=g) for _ in range(3)]
    assert abs(audio_dependence.seed_agreement(independent)) < 0.2
    assert np.isnan(audio_dependence.seed_agreement([jaw]))
