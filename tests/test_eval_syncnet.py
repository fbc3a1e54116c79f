"""LSE-C / LSE-D: score arithmetic, the SyncNet architecture against the official weights' layout, end to end."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlogger.evaluation.lse import LSE, embed_chunks, embed_clip, offset_distances, sync_scores
from vlogger.evaluation.metric import Measured
from vlogger.evaluation.syncnet_model import SyncNet, load_syncnet

# Read off joonson/syncnet_python SyncNetModel.py (class S): a wrong layer order or size breaks these.
OFFICIAL_SHAPES = {
    "netcnnaud.0.weight": (64, 1, 3, 3),
    "netcnnaud.1.running_var": (64,),
    "netcnnaud.4.weight": (192, 64, 3, 3),
    "netcnnaud.18.weight": (512, 256, 5, 4),
    "netcnnaud.19.bias": (512,),
    "netfcaud.0.weight": (512, 512),
    "netfcaud.3.weight": (1024, 512),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7),
    "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.18.weight": (512, 256, 1, 6, 6),
    "netfclip.1.running_mean": (512,),
    "netfclip.3.bias": (1024,),
}
OFFICIAL_TENSORS = 88  # weights, biases and BN running stats; num_batches_tracked comes on top in newer saves


def unit_rows(n: int, gen: torch.Generator, dim: int = 1024) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=gen), dim=1)


def audio_leading(video: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """audio[t] = video[t + k] (+ noise): the sound runs k frames ahead; unrelated rows where t + k falls outside."""
    audio = unit_rows(len(video), gen)
    src = torch.arange(len(video)) + k
    inside = (src >= 0) & (src < len(video))
    audio[inside] = video[src[inside]]
    return audio + 1e-3 * torch.randn(audio.shape, generator=gen)


def test_offset_distances_match_the_definition():
    gen = torch.Generator().manual_seed(1)
    video, audio, vshift = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen), 3
    dists = offset_distances(video, audio, vshift)
    for t in range(6):
        for j in range(2 * vshift + 1):
            s = t + j - vshift
            other = audio[s] if 0 <= s < 6 else torch.zeros(8)
            assert dists[t, j] == pytest.approx(float((video[t] - other + 1e-6).norm()), rel=1e-5)


@pytest.mark.parametrize("k", [-5, 0, 3, 7])
def test_scores_recover_a_known_offset(k):
    # Convention (the original's): offset k > 0 = audio k frames ahead of the video; a delayed audio track gives -k.
    gen = torch.Generator().manual_seed(10 + k)
    video = unit_rows(100, gen)
    scores = sync_scores(video, audio_leading(video, k, gen))
    assert scores.offset == k
    assert scores.distance < 0.2  # only the |k| rows without a partner are far
    assert scores.confidence > 1.0  # unrelated unit vectors sit ~sqrt(2) apart


def test_unrelated_sequences_have_low_confidence():
    gen = torch.Generator().manual_seed(3)
    scores = sync_scores(unit_rows(100, gen), unit_rows(100, gen))
    # Not 0: zero padding makes far offsets look slightly closer (1 vs sqrt(2)), as in the original.
    assert scores.confidence < 0.1
    assert scores.distance > 1.2


def test_scores_reject_mismatched_sequences():
    with pytest.raises(ValueError, match="embedding sequences"):
        sync_scores(torch.zeros(10, 1024), torch.zeros(9, 1024))


def test_architecture_matches_official_layout_and_loads_strict(tmp_path):
    state = SyncNet().state_dict()
    for key, shape in OFFICIAL_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == OFFICIAL_TENSORS
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    model = load_syncnet(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        assert model.embed_audio(torch.randn(3, 1, 13, 20)).shape == (3, 1024)
        assert model.embed_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)


def test_2018_style_file_loads_strict(tmp_path):
    # The released file predates PyTorch 1.6's zip format and maybe 0.4.1's BatchNorm num_batches_tracked.
    state = {k: v for k, v in SyncNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.model", _use_new_zipfile_serialization=False)
    load_syncnet(tmp_path / "old.model")


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    zoo = pytest.importorskip("vlogger.zoo", reason="vlogger.zoo not importable yet")
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    with pytest.raises(zoo.MissingWeights, match="vlogger zoo fetch syncnet_v2"):
        load_syncnet()
    with pytest.raises(zoo.MissingWeights):
        LSE()


def synthetic_clip(n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n_frames, 32, 32, 3), dtype=np.uint8)
    return frames, (0.1 * rng.standard_normal(n_frames * 640)).astype(np.float32)


def test_metric_accumulates_per_video():
    torch.manual_seed(0)
    metric = LSE(model=SyncNet())
    scores = [metric.score_clip(*synthetic_clip(n, seed)) for seed, n in [(0, 8), (1, 10)]]
    for s in scores:
        metric.update(Measured(value=s))
    out = metric.compute()
    assert out["lse_c"] == pytest.approx(np.mean([s.confidence for s in scores]))
    assert out["lse_d"] == pytest.approx(np.mean([s.distance for s in scores]))
    assert out["lse_offset"] == pytest.approx(np.mean([s.offset for s in scores]))
    assert out["lse_abs_offset"] == pytest.approx(np.mean([abs(s.offset) for s in scores]))


def test_crops_arriving_in_chunks_embed_as_the_whole_clip():
    """The runner hands crops over 64 frames at a time; the embeddings are those of the whole clip, bit for bit."""
    torch.manual_seed(0)
    model = SyncNet().eval()
    frames, audio = synthetic_clip(50, 2)
    whole = embed_clip(model, frames, audio, batch_size=20)
    chunks = [frames[i : i + 7] for i in range(0, len(frames), 7)]
    streamed = embed_chunks(model, chunks, len(frames), audio, batch_size=20)
    for a, b in zip(whole, streamed, strict=True):
        assert torch.equal(a, b)


def test_too_short_clip_is_refused():
    with pytest.raises(ValueError, match="too short"):
        embed_clip(SyncNet().eval(), *synthetic_clip(5, 0))


def test_real_clip_end_to_end_with_random_weights(clips_dir):
    from vlogger.core.audio import load_audio
    from vlogger.core.video import probe, read_frames, resample_indices

    path = clips_dir / "retalking_face5.mp4"
    seconds = 2.0
    info = probe(path)
    frames = np.stack(list(read_frames(info, resample_indices(info.frame_times, seconds, 25))))
    side = min(frames.shape[1:3])  # centre square stands in for the face crop
    y0, x0 = (frames.shape[1] - side) // 2, (frames.shape[2] - side) // 2
    frames = frames[:, y0 : y0 + side, x0 : x0 + side]
    audio = load_audio(path, 16000, info.start_time)[: int(seconds * 16000)]

    torch.manual_seed(0)
    model = SyncNet().eval()
    start = time.process_time()
    video_emb, audio_emb = embed_clip(model, frames, audio)
    cpu = time.process_time() - start
    print(f"SyncNet embedding: {cpu / seconds:.2f} CPU s per second of video ({torch.get_num_threads()} threads)")
    assert video_emb.shape == audio_emb.shape == (len(frames) - 5, 1024)
    assert torch.isfinite(video_emb).all() and torch.isfinite(audio_emb).all()
    scores = sync_scores(video_emb, audio_emb)
    assert np.isfinite([scores.confidence, scores.distance]).all() and -15 <= scores.offset <= 15


def _calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int = 10) -> list[torch.Tensor]:
    """joonson/syncnet_python SyncNetInstance.py `calc_pdist`, transcribed line for line."""
    win_size = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    dists = []
    for i in range(0, len(feat1)):
        dists.append(
            torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :])
        )
    return dists


def test_scores_are_those_of_the_reference_calc_pdist_bit_for_bit():
    """`SyncNetInstance.evaluate`'s arithmetic on calc_pdist: mdist = mean(stack(dists, 1), 1), offset =
    vshift - argmin, conf = median - min. Our vectorised version gives the same float32 numbers."""
    gen = torch.Generator().manual_seed(3)
    for t, vshift in ((40, 15), (120, 15), (33, 10)):
        video, audio = torch.randn(t, 1024, generator=gen), torch.randn(t, 1024, generator=gen)
        mdist = torch.mean(torch.stack(_calc_pdist(video, audio, vshift), 1), 1)
        minval, minidx = torch.min(mdist, 0)
        ours = sync_scores(video, audio, vshift)
        assert ours.distance == float(minval) and ours.confidence == float(torch.median(mdist) - minval)
        assert ours.offset == vshift - int(minidx)
