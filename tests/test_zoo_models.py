"""Our checkpoints in the zoo: `add-checkpoint` from a trained run, the hash check before loading, a
tampered file refused, `generate --model` as the original checkpoints, and the shipped folder's budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vlogger.zoo import ZooError, load_registry, model_files, verify
from vlogger.zoo.models import shipped_bytes, store_checkpoint
from vlogger.zoo.registry import MODELS, PACKAGED_REGISTRY, SHIPPED_BUDGET, write_entries


def _main(*args) -> int:
    from vlogger.cli import main

    return main([str(a) for a in args])


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the packaged registry in use (so `--ship` writes beside it) and an empty user zoo."""
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    path = tmp_path / "package" / "registry.yaml"
    path.parent.mkdir()
    shutil.copyfile(PACKAGED_REGISTRY, path)
    monkeypatch.setenv("VLOGGER_ZOO_REGISTRY", str(path))
    return path


def test_shipped_models_fit_the_budget_and_match_their_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))  # no user zoo: the package alone
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    assert shipped_bytes(PACKAGED_REGISTRY) <= SHIPPED_BUDGET
    registry = load_registry()
    shipped = [n for n, e in registry.items() if e.path is not None and e.package is None]
    assert all(registry[n].path.is_relative_to(PACKAGED_REGISTRY.parent / MODELS) for n in shipped)
    models = [n for n, e in registry.items() if e.kind == "model"]
    status = verify(shipped + models) if shipped + models else {}
    assert all(why == "ok" for why in status.values()), status


def test_the_shipped_cascade_runs_on_a_new_photo(tmp_path, monkeypatch, shared_dir):
    """`make demo`'s last step: the shipped model end to end, its Whisper-fed stage 1 driving a stage 2
    trained on log-mel shards (stage 2 reads no audio, so their audio features may differ)."""
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    torch.set_num_threads(1)
    speech, sr = sf.read(shared_dir / "data" / "audio" / "echomimic_jane.wav", dtype="float32")
    sf.write(tmp_path / "speech.wav", speech[: 2 * sr], sr)
    photo = shared_dir / "data" / "images" / "portrait_hallo6.jpg"
    args = ["--model", "vlogger-corpus-64", "--image", photo, "--audio", tmp_path / "speech.wav", "--steps", 1]
    assert _main("generate", *args, "--out", tmp_path / "out") == 0
    with np.load(tmp_path / "out" / "motion.npz") as z:
        assert len(z["motion"]) == 50


def test_registry_edits_keep_the_other_entries_and_their_comments(registry):
    before = registry.read_text()
    fields = {"url": "https://example.org/x.pth", "licence": "l", "purpose": "p", "format": "f"}
    write_entries(registry, {"blazeface": {**fields, "purpose": "replaced"}, "new_one": fields})
    after = registry.read_text()
    assert "# Weights the toolkit uses" in after and "# buffalo_l's recognition model" in after
    reg = load_registry(registry)
    assert reg["blazeface"].purpose == "replaced" and reg["new_one"].url == fields["url"]
    assert reg["3ddfa_v2_mb05"].sha256 == load_registry(PACKAGED_REGISTRY)["3ddfa_v2_mb05"].sha256
    assert len(after.splitlines()) < len(before.splitlines()) + 10  # blazeface replaced, not appended twice


def test_shipping_beyond_the_budget_writes_nothing(registry, monkeypatch):
    import vlogger.zoo.models as models

    monkeypatch.setattr(models, "SHIPPED_BUDGET", 1000)
    text = registry.read_text()
    with pytest.raises(ZooError, match="exceeds the 0 MB the package may hold"):
        store_checkpoint("big", "motion", b"x" * 2000, licence="l", purpose="p", file_format="f", ship=True)
    assert registry.read_text() == text and not (registry.parent / MODELS).exists()


def _short_speech(talking, tmp_path: Path) -> tuple[Path, Path]:
    """The talking sample's photo (its first frame) and its first second of speech."""
    _, audio, video = talking
    wav = tmp_path / "speech.wav"
    sf.write(wav, audio[:16000], 16000)
    return video, wav


@pytest.mark.slow
def test_add_checkpoint_verify_generate_and_refuse_a_tampered_file(tiny_models, talking, registry, tmp_path, capsys):
    from vlogger.generation.pipeline import Sampling, generate_motion, generate_video
    from vlogger.training.checkpoints import read_checkpoint

    motion_ckpt, video_ckpt = tiny_models["motion"], tiny_models["video"]
    assert _main("zoo", "add-checkpoint", video_ckpt, "--name", "tiny", "--stage", "motion", "--ship") == 2
    assert "a video checkpoint, not --stage motion" in capsys.readouterr().err
    assert _main("zoo", "add-checkpoint", Path(motion_ckpt).parents[1], "--name", "tiny", "--ship") == 0
    args = ["--card-notes", "trained for a test", "--ship"]
    assert _main("zoo", "add-checkpoint", video_ckpt, "--name", "tiny", "--stage", "video", *args) == 0
    folder = registry.parent / MODELS / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "motion.safetensors", "video.safetensors"]
    assert b"pickle" not in (folder / "video.safetensors").read_bytes()[:8]
    card = (folder / "README.md").read_text()
    assert "at step 5" in card and "at step 3" in card and "synth_000" in card and "trained for a test" in card
    assert card.count("over 1 start(s) on ") == 2  # wall time and hardware from the runs' summary.json
    assert "landmark_format: mediapipe478" in card and "held out of training (data.val_identities): synth_001" in card

    capsys.readouterr()
    assert _main("zoo", "list") == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["tiny"] == ["model", "yes"] and rows["tiny.motion"] == ["weights", "yes"]
    assert _main("zoo", "verify", "tiny") == 0
    assert capsys.readouterr().out.splitlines() == ["tiny: ok"]

    # the zoo file reads back as the checkpoint: same config and contract, its EMA weights rounded to fp16
    cfg, spec, state = read_checkpoint(folder / "video.safetensors", "video")
    cfg0, spec0, state0 = read_checkpoint(video_ckpt, "video")
    assert spec == spec0 and cfg["model"] | {"init_from": None} == cfg0["model"] | {"init_from": None}
    for k, v in state.items():
        if k.startswith(("model.", "ema.module.")):
            ema = state0["ema.module." + k.split(".", 1)[1].removeprefix("module.")]
            assert v.dtype == torch.float32 and torch.equal(v, ema.half().float()), k

    # generation from the zoo = from the checkpoints, within fp16: the motion, then stage 2 on one motion
    photo, speech = _short_speech(talking, tmp_path)
    for out, how in (
        ("zoo", ["--model", "tiny"]),
        ("ckpt", ["--motion-checkpoint", motion_ckpt, "--video-checkpoint", video_ckpt]),
    ):
        assert (
            _main("generate", "--image", photo, "--audio", speech, "--out", tmp_path / out, "--steps", "2", *how) == 0
        )
    motions = [np.load(tmp_path / out / "motion.npz")["motion"] for out in ("zoo", "ckpt")]
    assert motions[0].shape == motions[1].shape == (25, motions[0].shape[1])
    np.testing.assert_allclose(motions[0], motions[1], atol=2e-3 * np.abs(motions[1]).max())
    files = model_files("tiny")
    result = generate_motion(photo, speech, files.motion, Sampling())
    a, b = (generate_video(result, c, tmp_path / "stage2", Sampling(steps=2)) for c in (files.video, video_ckpt))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2

    # one changed byte: refused before loading, naming the file and both hashes
    data = bytearray((folder / "video.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "video.safetensors").write_bytes(bytes(data))
    capsys.readouterr()
    assert _main("generate", "--model", "tiny", "--image", photo, "--audio", speech, "--out", tmp_path / "t") == 2
    err = capsys.readouterr().err
    listed = load_registry()["tiny.video"].sha256
    assert str(folder / "video.safetensors") in err and listed in err and "changed or damaged" in err
    assert not (tmp_path / "t").exists()
    assert _main("zoo", "verify") == 2
    assert "tiny: tiny.video: " in capsys.readouterr().out
