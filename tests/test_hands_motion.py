"""Hands, gaze and blinks in stage 1's motion vector and in stage 2's controls: the vector codes
them and gives them back (a hand leaving and re-entering the frame, one hand only, crossed
hands, no hands), models record the parts they use, and the models of before (face and body
only, config_version 3 to 5) keep loading and generating beside shards that carry hands and eyes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlogger.body.hand_basis import fit_hand_basis, placeholder_hand_basis
from vlogger.body.motion import MotionLayout, carry_parts, from_motion, reference_of, to_motion
from vlogger.core.config import load_config
from vlogger.core.errors import ContractError
from vlogger.core.spec import LEGACY_PARTS, DataSpec
from vlogger.preprocessing.synthetic import synthetic_hands
from vlogger.training.checkpoints import CONFIG_VERSION

SIZE = 256
ALL = ("face", "body", "hands", "eyes")


def _params(n: int, seed: int = 0, crossed: bool = False) -> dict:
    """Face-and-body params of a head at rest, gesturing hands (`synthetic_hands`: the right one
    leaves the frame and returns) with random finger movement, gaze and blinks."""
    rng = np.random.default_rng(seed)
    hands = synthetic_hands(0.5 + 0.5 * np.sin(np.arange(n) / 4), SIZE, rng)
    wrist = hands[:, :, :1, :3].copy()
    hands[..., :3] = wrist + (hands[..., :3] - wrist) * (1 + 0.2 * rng.standard_normal((n, 2, 21, 1)))
    hands[..., 2] = 5 * rng.standard_normal((n, 2, 21))
    hands[..., 2] -= hands[:, :, :1, 2]  # z relative to the wrist
    if crossed:  # each hand on the other's side of the body
        hands[..., 0] = SIZE - hands[..., 0]
    gaze = 0.2 * rng.standard_normal((n, 2, 2))
    eyelid = np.where(np.arange(n) % 40 < 3, 0.02, 0.3)[:, None].repeat(2, 1)
    return {
        "expression": 0.1 * rng.standard_normal((n, 20)),
        "rotation": np.eye(3)[None].repeat(n, 0),
        "scale": np.full(n, 60.0) + rng.standard_normal(n),
        "translation": np.array([128.0, 100.0, 0.0]) + rng.standard_normal((n, 3)),
        "body": 100 + 20 * rng.standard_normal((n, 8, 3)),
        "body_visible": np.ones((n, 8)),
        "hands": hands[..., :3].astype(np.float32),
        "hand_visible": hands[..., 3].astype(np.float32),
        "gaze": gaze.astype(np.float32),
        "eyelid": eyelid.astype(np.float32),
    }


@pytest.fixture(scope="module")
def layout() -> MotionLayout:
    """All parts, in a basis of every hand-pose dimension (so the vector is lossless)."""
    clips = [(p["hands"], p["hand_visible"]) for p in (_params(120, s) for s in range(2))]
    return MotionLayout.of_parts(8, ALL, 63, fit_hand_basis(clips, 63))


@pytest.mark.parametrize("crossed", [False, True])
def test_hands_and_eyes_go_through_the_motion_vector_and_back(layout, crossed):
    p = _params(90, seed=5, crossed=crossed)
    ref = reference_of(p, 40)  # a reference in which the right hand is out of the frame
    assert ref["hand_visible"][1].max() == 0
    motion = to_motion(p, ref, layout=layout)
    assert motion.shape == (90, layout.dim) == (90, 8 + 9 + 24 + 2 * (1 + 3 + 63) + 6)
    back = from_motion(motion, ref, layout)
    gone = slice(30, 55)  # `synthetic_hands`: the right hand is out of the frame in [n/3, n/3 + 25)
    seen = back["hand_visible"][:, :, 0].numpy()
    assert (seen[:, 0] == 1).all() and (seen[gone, 1] == 0).all() and (seen[:30, 1] == 1).all()
    assert (seen[55:, 1] == 1).all()  # ... and is back
    assert (back["hands"][gone, 1] == 0).all()  # nothing of it drawn
    keep = seen > 0
    np.testing.assert_allclose(back["hands"].numpy()[keep], p["hands"][keep], atol=1e-2)  # crop pixels
    if crossed:  # sides are the person's, wherever the hand is
        assert (back["hands"][:, 0, 0, 0] < SIZE / 2).all()
    np.testing.assert_allclose(back["gaze"].numpy(), p["gaze"], atol=1e-6)
    np.testing.assert_allclose(back["eyelid"].numpy(), p["eyelid"], atol=1e-6)
    # the face and body are what the face-and-body vector says, so old models read the same values
    legacy = to_motion(p, ref, 8)
    torch.testing.assert_close(motion[:, : layout.base_dim], legacy)
    assert set(layout.groups) >= {"hand_visible", "hand_place", "hand_shape", "gaze", "eyelid"}


def test_one_hand_only_and_no_hands_at_all(layout):
    p = _params(40, seed=2)
    p["hand_visible"][:, 0] = 0  # the left hand never seen
    p["hands"][:, 0] = 0
    back = from_motion(to_motion(p, reference_of(p, 0), layout=layout), reference_of(p, 0), layout)
    assert (back["hand_visible"][:, 0] == 0).all() and (back["hand_visible"][:10, 1] == 1).all()
    p["hand_visible"][:] = 0  # a close-up: no hands
    p["hands"][:] = 0
    motion = to_motion(p, reference_of(p, 0), layout=layout)
    assert torch.isfinite(motion).all() and (motion[:, layout.base_dim : layout.base_dim + layout.hand_dim] == 0).all()
    assert (from_motion(motion, reference_of(p, 0), layout)["hand_visible"] == 0).all()
    # too few hands to learn a basis from: the placeholder keeps the vector's size
    small = MotionLayout.of_parts(8, ALL, 12, placeholder_hand_basis(12))
    assert to_motion(p, reference_of(p, 0), layout=small).shape == (40, small.dim)


def test_retargeting_carries_hands_by_the_heads_and_eyes_as_they_are():
    p = _params(10)
    src = reference_of(p, 0)
    dst = {**src, "scale": src["scale"] * 2, "translation": src["translation"] + torch.tensor([10.0, -5.0, 3.0])}
    moved = carry_parts(p, src, dst)
    seen = p["hand_visible"] > 0
    offset = (p["hands"][..., :2] - src["translation"][:2].numpy()) * 2 + dst["translation"][:2].numpy()
    np.testing.assert_allclose(moved["hands"][..., :2][seen], offset[seen], rtol=1e-5)
    np.testing.assert_allclose(moved["hands"][..., 2][seen], 2 * p["hands"][..., 2][seen], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(moved["gaze"], p["gaze"])


def test_a_model_uses_the_shards_parts_unless_told_fewer():
    spec = DataSpec.from_preprocess_config(load_config(None, "preprocess/default.yaml"), "mediapipe478", "abc")
    assert spec.parts == ALL and spec.model_parts(None, "x") == ALL
    assert spec.model_parts(["eyes", "body", "face"], "x") == ("face", "body", "eyes")
    with pytest.raises(ContractError, match="lacks face or body"):
        spec.model_parts(["face", "hands"], "model.parts")
    legacy = DataSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "parts"}, "old index.json")
    with pytest.raises(ContractError, match=r"model.parts asks for \['hands'\].*\['face', 'body'\]"):
        legacy.model_parts(["face", "body", "hands"], "model.parts")


def _as_version(path, tmp_path, name: str, version: int):
    """The checkpoint as the models of before issue 21's stages wrote it: config_version 5, 4
    (before stage 2's ControlNet level and distillation) or 3 (before the jaw weight and audio
    augmentation), no `model.parts` (nor stage 1's hand and eye settings), the spec of shards
    with hands and eyes."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["config_version"] == CONFIG_VERSION == 8 and hp["cfg"]["model"]["parts"] == list(LEGACY_PARTS)
    cfg = hp["cfg"]
    for key in ("parts", "hand_basis", "hand_components"):
        cfg["model"].pop(key, None)
    for key in ("hands_weight", "eyes_weight") + ("jaw_weight",) * (version < 4):
        cfg.get("loss", {}).pop(key, None)
    if version < 4:
        cfg.pop("augment", None)
    if version < 5:  # stage 2's ControlNet level, compiled sampling, distillation
        cfg["model"].pop("control_level", None)
        cfg.get("sampling", {}).pop("compile", None)
        cfg.pop("distill", None)
    cfg.get("augment", {}).pop("vtlp", None)  # version 7: stage 1's vocal-tract warp,
    cfg.get("diffusion", {}).pop("frame_noise_correlation", None)  # stage 2's shared clip noise
    ckpt["hyper_parameters"] = {**hp, "cfg": cfg, "config_version": version}
    out = tmp_path / name
    torch.save(ckpt, out)
    return out


@pytest.mark.slow
def test_old_face_and_body_models_keep_generating_beside_new_ones(talking, tmp_path):
    """Synthetic shards with gesturing hands (spec parts face, body, hands, eyes). Stage-1 and
    stage-2 models written as config_version 3, 4 and 5 (face and body only) load as such and generate a
    video together; new models use every part (17 control channels, hands in the motion); a new
    stage 1 drives an old stage 2, an old stage 1 cannot drive a new stage 2, and the error names
    both."""
    import cv2

    from vlogger.core.video import decode_mp4_bytes
    from vlogger.generation.pipeline import (
        Sampling,
        generate_motion,
        generate_video,
        load_motion_model,
        load_video_model,
    )
    from vlogger.preprocessing.synthetic import make_synthetic_shards
    from vlogger.training.run import train_motion, train_video

    shards, runs = tmp_path / "shards", tmp_path / "runs"
    make_synthetic_shards(shards, clips=2, seconds=3.0, overrides=["crop.size=64"], hands=True)
    assert DataSpec.of_shards(shards).parts == ALL
    common = [f"data.shards={shards}", "data.val_identities=[synth_001]", "trainer.limit_val_batches=1"]
    common += [f"logging.dir={runs}", "logging.logger=csv", "logging.media_every_steps=0"]
    stage1 = ["model.width=32", "model.depth=2", "model.heads=2", "data.batch_size=4", "model.hand_components=4"]
    stage1 += ["trainer.max_steps=2", "trainer.val_every_steps=2", *common]
    stage2 = ["data.size=32", "data.frames=4", "data.batch_size=2", "guidance.overlap=2", "phase=clip"]
    stage2 += ["model.channels=[16,32,64]", "trainer.max_steps=1", "trainer.val_every_steps=1", *common]
    legacy = "model.parts=[face, body]"

    def motion(name: str, *extra: str):
        cfg = load_config(None, "train/motion.yaml", [*stage1, f"logging.name={name}", *extra])
        return train_motion(cfg)["last_checkpoint"]

    def video(name: str, *extra: str):
        cfg = load_config(None, "train/video.yaml", [*stage2, f"logging.name={name}", *extra])
        return train_video(cfg)["last_checkpoint"]

    old_m = _as_version(motion("m_old", legacy), tmp_path, "motion_v3.ckpt", 3)
    old_v = _as_version(video("v_old", legacy), tmp_path, "video_v4.ckpt", 4)
    assert load_video_model(_as_version(video("v_old5", legacy), tmp_path, "video_v5.ckpt", 5)).parts == LEGACY_PARTS
    new_m, new_v = motion("m_new"), video("v_new")
    m = load_motion_model(old_m)
    assert m.parts == LEGACY_PARTS and m.layout.dim == MotionLayout(16).dim and m.spec.parts == ALL
    v = load_video_model(old_v)
    assert v.parts == LEGACY_PARTS and v.model.control_channels == 14
    assert m.cfg["augment"]["vtlp"] == 0.0 and v.cfg["diffusion"]["frame_noise_correlation"] == 0.0  # trained without
    assert load_video_model(new_v).model.control_channels == 17
    assert load_motion_model(new_m).parts == ALL

    frames, _, clip = talking
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    old = generate_motion(photo, clip, old_m, Sampling(steps=2))
    assert old.parts == LEGACY_PARTS and "hands" not in old.params and old.motion.shape[1] == m.layout.dim
    video_old = generate_video(old, old_v, tmp_path / "old", Sampling(steps=1))
    assert video_old.shape == (len(old.motion), 32, 32, 3)
    with pytest.raises(
        ContractError, match=r"v_new.*draws face, body, hands, eyes.*carries face, body \(no hands, eyes"
    ):
        generate_video(old, new_v, tmp_path / "mismatch", Sampling(steps=1))
    new = generate_motion(photo, clip, new_m, Sampling(steps=2))
    assert new.parts == ALL and new.params["hands"].shape == (len(new.motion), 2, 21, 3)
    assert new.params["gaze"].shape == (len(new.motion), 2, 2)
    for ckpt in (old_v, new_v):  # fewer parts drawn than the motion has is fine
        assert generate_video(new, ckpt, tmp_path / Path(ckpt).parent.parent.name, Sampling(steps=1)).shape[1:] == (
            32,
            32,
            3,
        )
    assert decode_mp4_bytes((tmp_path / "old" / "video.mp4").read_bytes()).shape[0] == len(old.motion)


@pytest.mark.slow
def test_shards_of_a_hand_leaving_the_frame_are_valid_and_both_stages_read_them(tmp_path):
    """Synthetic shards whose right hand leaves the frame for a second and returns: the params say
    when it is seen, stage 1's windows carry that in the motion vector, stage 2's controls draw
    both hands as their own classes where they are seen."""
    from vlogger.body.topology import FULL_REGIONS
    from vlogger.datasets.motion import MotionDataModule
    from vlogger.datasets.shards import all_shard_urls, clip_arrays
    from vlogger.datasets.video import VideoDataModule
    from vlogger.preprocessing.synthetic import make_synthetic_shards

    make_synthetic_shards(tmp_path, 2, 3.0, val_identities=("synth_001",), overrides=["crop.size=64"], hands=True)
    for clip in clip_arrays(all_shard_urls(tmp_path), ["params.npz"]):
        seen = clip["params.npz"]["hand_visible"].max(-1)  # (75, 2)
        assert (seen[:, 0] == 1).all() and (seen[25:50, 1] == 0).all() and (seen[:25, 1] == 1).all()
        assert (seen[50:, 1] == 1).all()
    sets = [f"data.shards={tmp_path}", "data.val_identities=[]", "data.min_ref_gap=10"]
    dm = MotionDataModule(load_config(None, "train/motion.yaml", [*sets, "data.window=25", "model.hand_components=4"]))
    stats = dm.stats()
    assert dm.parts == ALL and stats.mean.shape == (dm.layout.dim,) and torch.isfinite(stats.std).all()
    window = next(iter(dm.val_dataloader()))
    seen_right = window["motion"][:, :, dm.layout.hand_visible][..., 1]
    assert set(seen_right.unique().tolist()) <= {0.0, 1.0} and window["ref"].shape[1] == dm.layout.reference_dim
    sets += ["data.size=32", "data.frames=25", "data.batch_size=1", "phase=clip"]
    batch = next(iter(VideoDataModule(load_config(None, "train/video.yaml", sets)).val_dataloader()))
    semantic = batch["controls"][0, :, : len(FULL_REGIONS)]  # (frames, classes, 32, 32)
    drawn = semantic.sum((-1, -2))
    left, right = FULL_REGIONS.index("left_hand"), FULL_REGIONS.index("right_hand")
    assert (drawn[:, left] > 0).all()  # the left hand is always in view
    start = int(batch["start"][0])
    for i in range(25):
        assert (drawn[i, right] > 0) == (not 25 <= start + i < 50), (start, i)
