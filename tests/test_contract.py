"""The data contract (vlogger.core.spec): preprocessing writes it, loaders and training check it,
checkpoints carry it, generation prepares its inputs with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vlogger.body.facemesh import FaceBasis
from vlogger.core.config import load_config
from vlogger.core.errors import ContractError
from vlogger.core.spec import DataSpec
from vlogger.datasets.motion import ToMotionWindows
from vlogger.datasets.shards import shard_urls
from vlogger.datasets.windows import window_stream
from vlogger.preprocessing.synthetic import make_synthetic_shards


def motion_cfg(shards, runs, steps: int = 3, extra: tuple[str, ...] = ()) -> dict:
    over = [f"data.shards={shards}", "model.width=32", "model.depth=2", "model.heads=2", "data.batch_size=4"]
    over += [f"trainer.max_steps={steps}", f"trainer.val_every_steps={steps}", "trainer.limit_val_batches=1"]
    over += [f"logging.dir={runs}", "logging.logger=csv", "logging.media_every_steps=0", *extra]
    return load_config(None, "train/motion.yaml", over)


@pytest.fixture(scope="module")
def other_basis_shards(tmp_path_factory):
    """One synthetic clip fitted with a basis other than the shipped one."""
    d = tmp_path_factory.mktemp("other_basis")
    basis = FaceBasis.load()
    basis.components = basis.components * 1.01
    path = basis.save(d / "basis.npz")
    make_synthetic_shards(
        d / "shards", clips=1, seconds=2.0, val_identities=(), overrides=["crop.size=64", f"fit.basis={path}"]
    )
    return d / "shards", FaceBasis.load(path).basis_id


def test_index_carries_the_spec_of_the_settings(synthetic_shards):
    spec = DataSpec.of_shards(synthetic_shards)
    assert spec.crop["size"] == 64 and spec.fps == 25 and spec.rows_per_frame == 4
    assert spec.basis_id == FaceBasis.load().basis_id and spec.landmark_format == "mediapipe478"
    index = json.loads((synthetic_shards / "index.json").read_text())
    assert DataSpec.from_dict(index["spec"], "index") == spec


def test_a_wrong_basis_shard_raises_naming_the_shard_and_both_ids(other_basis_shards):
    shards, other_id = other_basis_shards
    shipped = FaceBasis.load().basis_id
    (url,) = shard_urls(shards, "train")
    stream = window_stream([url], ToMotionWindows(25, 2, 25, 16, None, 0, basis_id=shipped))
    with pytest.raises(ContractError) as err:
        list(stream)
    assert url in str(err.value) and shipped in str(err.value) and other_id in str(err.value)


def test_training_refuses_shards_of_another_basis(other_basis_shards, tmp_path):
    from vlogger.training.run import train_motion

    shards, other_id = other_basis_shards
    with pytest.raises(ContractError, match=f"{FaceBasis.load().basis_id} in model.basis, {other_id} in"):
        train_motion(motion_cfg(shards, tmp_path, extra=("data.val_identities=[synth_000]",)))


def test_two_shard_folders_of_different_specs_are_refused(synthetic_shards, tmp_path):
    from vlogger.datasets.motion import MotionDataModule

    make_synthetic_shards(tmp_path / "s3", clips=1, seconds=2.0, overrides=["crop.size=64", "crop.scale=3.0"])
    cfg = motion_cfg(synthetic_shards, tmp_path)
    cfg["data"]["shards"] = [str(synthetic_shards), str(tmp_path / "s3")]
    with pytest.raises(ContractError, match=r"crop\.scale: 2\.6 in .*index\.json, 3\.0 in .*s3/index\.json"):
        MotionDataModule(cfg)


def test_a_resumed_preprocessing_job_with_other_settings_is_refused(tmp_path):
    make_synthetic_shards(tmp_path, clips=1, seconds=2.0, overrides=["crop.size=64"])
    with pytest.raises(ContractError, match=r"crop\.size: 64 in .*spec-000\.json, 128 in this run's settings"):
        make_synthetic_shards(tmp_path, clips=1, seconds=2.0, overrides=["crop.size=128"])


def test_checkpoint_stores_the_spec_and_old_checkpoints_migrate(synthetic_shards, tmp_path):
    from vlogger.generation.pipeline import load_motion_model
    from vlogger.training.checkpoints import CONFIG_VERSION
    from vlogger.training.run import train_motion

    ckpt = train_motion(motion_cfg(synthetic_shards, tmp_path, steps=2))["last_checkpoint"]
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    hp = saved["hyper_parameters"]
    assert hp["config_version"] == CONFIG_VERSION and DataSpec.from_dict(hp["spec"], ckpt) == DataSpec.of_shards(
        synthetic_shards
    )
    # round 1's layout: the config and the basis id, no spec; its shards had today's default settings
    saved["hyper_parameters"] = {"cfg": hp["cfg"], "basis_id": hp["spec"]["basis_id"]}
    torch.save(saved, tmp_path / "old.ckpt")
    old = load_motion_model(tmp_path / "old.ckpt")
    assert old.spec.crop == load_config(None, "preprocess/default.yaml")["crop"]
    new = load_motion_model(ckpt)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values(), strict=True))


@pytest.mark.slow
def test_generation_prepares_the_photo_with_the_checkpoints_crop(talking, tmp_path, link_inputs):
    """Preprocess real video with crop.scale=3.0, train stage 1 a few steps: generation crops the
    photo at scale 3.0 although today's default is 2.6; a stage-2 model of other shards is refused."""
    import cv2

    from vlogger.body.fitting import load_body
    from vlogger.body.reference import analyse_reference
    from vlogger.generation.pipeline import BodyFiles, Sampling, generate_motion, generate_video, inference_config
    from vlogger.preprocessing.run import preprocess
    from vlogger.training.run import train_motion, train_video

    _, _, path = talking
    src = link_inputs(tmp_path / "in", path, ["a.mp4", "b.mp4"])
    preprocess(
        src,
        tmp_path / "shards",
        load_config(None, "preprocess/default.yaml", ["crop.scale=3.0", "shards.val_fraction=0"]),
    )
    ckpt = train_motion(motion_cfg(tmp_path / "shards", tmp_path / "runs", extra=("data.val_identities=[b]",)))[
        "last_checkpoint"
    ]
    photo = tmp_path / "photo.png"
    from vlogger.core.video import decode_mp4_bytes

    cv2.imwrite(str(photo), cv2.cvtColor(decode_mp4_bytes(path.read_bytes())[0], cv2.COLOR_RGB2BGR))
    result = generate_motion(photo, path, ckpt, Sampling(steps=2))
    assert result.spec.crop["scale"] == 3.0
    fit = load_body("facemesh").fit
    at_3 = analyse_reference(photo, inference_config(result.spec, BodyFiles()), fit).crop
    at_default = analyse_reference(photo, load_config(None, "preprocess/default.yaml"), fit).crop
    assert np.array_equal(result.reference.crop, at_3) and not np.array_equal(at_3, at_default)
    # a stage-2 model trained on shards of another spec (64 px synthetic, scale 2.6)
    shards = tmp_path / "synthetic"
    make_synthetic_shards(shards, clips=2, seconds=2.0, val_identities=("synth_001",), overrides=["crop.size=64"])
    sets = [f"data.shards={shards}", "data.size=32", "model.channels=[16,32,64]", "trainer.max_steps=1"]
    sets += ["trainer.val_every_steps=1", "trainer.limit_val_batches=1", f"logging.dir={tmp_path / 'runs'}"]
    sets += ["logging.logger=csv", "logging.media_every_steps=0"]
    video = train_video(load_config(None, "train/video.yaml", sets))["last_checkpoint"]
    with pytest.raises(ContractError, match=r"crop\.scale: 2\.6 in .*last\.ckpt, 3\.0 in the motion's source"):
        generate_video(result, video, tmp_path / "gen", Sampling(steps=1))


@pytest.mark.slow
def test_smplx_shards_train_stage_1_and_generate(talking, tmp_path):
    """Shards of SMPL-X fits (synthetic model) train stage 1: same contract, the body model's
    own basis id and expression size; too many expression coefficients asked is named. Then
    generation behind the body-model interface: the photo fitted with SMPL-X, driven, its
    controls rendered; without the SMPL-X folder it says what is missing."""
    from smplx_synthetic import write_synthetic_smplx

    from vlogger.core.errors import UsageError
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.generation.pipeline import Sampling, generate_motion, write_motion
    from vlogger.training.run import train_motion

    models = write_synthetic_smplx(tmp_path / "models").parents[1]
    over = ["crop.size=64", "fit.body_model=smplx", f"fit.model_path={models}", "fit.max_residual_px=50"]
    make_synthetic_shards(tmp_path / "shards", clips=2, seconds=2.0, val_identities=("synth_001",), overrides=over)
    spec = DataSpec.of_shards(tmp_path / "shards")
    assert spec.body_model == "smplx" and spec.basis_id == "smplx:SMPLX_NEUTRAL.npz"
    cfg = motion_cfg(tmp_path / "shards", tmp_path / "runs", steps=3, extra=("model.n_expression=13",))
    summary = train_motion(cfg)
    assert summary["global_step"] == 3 and np.isfinite(summary["val_loss_end"])
    with pytest.raises(
        ContractError, match=r"carries 13 expression coefficients \(smplx\), model.n_expression asks for 16"
    ):
        train_motion(motion_cfg(tmp_path / "shards", tmp_path / "runs2", steps=1))

    _, audio, clip = talking
    ckpt = summary["last_checkpoint"]
    with pytest.raises(UsageError, match=r"trained on SMPL-X fits \(smplx:SMPLX_NEUTRAL.npz\)"):
        generate_motion(clip, clip, ckpt, Sampling(steps=2))
    result = generate_motion(clip, clip, ckpt, Sampling(steps=2), body_model_path=str(models))
    n = len(audio) * 25 // 16000
    assert result.body.name == "smplx" and result.params["basis_id"] == "smplx:SMPLX_NEUTRAL.npz"
    assert result.params["body_pose"].shape[0] == n and result.params["global_orient"].shape[0] == n
    assert np.array_equal(result.params["betas"], result.reference.params["betas"])
    paths = write_motion(result, tmp_path / "out", size=64)
    frames = decode_mp4_bytes(paths["video"].read_bytes())
    assert frames.shape == (n, 64, 192, 3) and frames[:, :, :64].std() > 5  # the semantic panel draws a body
