"""The nine real talking-person clips in ../shared/data/clips, preprocessed once."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import torch
import webdataset as wds

from vlogger.core import landmarks
from vlogger.core.audio import from_flac
from vlogger.core.video import decode_frames
from vlogger.datasets.contact_sheet import contact_sheet
from vlogger.datasets.motion import ToMotionWindows
from vlogger.datasets.shards import all_shard_urls, shard_urls
from vlogger.datasets.windows import window_stream


def _samples(out):
    urls = [u for split in ("train", "val") for u in sorted(map(str, out.glob(f"shard-{split}-*.tar")))]
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))


def test_all_nine_clips_accepted(real_shards):
    out, _stats = real_shards
    index = json.loads((out / "index.json").read_text())
    assert index["inputs"] == 9 and index["inputs_with_clips"] == 9
    assert (out / "rejected.jsonl").read_text() == ""
    # the 60 s clip is cut into pieces of at most 20 s
    keys = [c["key"] for c in index["clip_list"]]
    assert sum(k.startswith("edtalk_pose_source2") for k in keys) == 3
    assert index["clips"] == len(_samples(out)) == len(set(keys))
    assert index["frames"] == sum(c["frames"] for c in index["clip_list"])
    assert len(index["shards"]) >= 3  # max_clips=3 in the fixture
    assert not list(out.glob("*.tmp"))


def test_frame_counts_and_audio_length_agree(real_shards):
    out, _ = real_shards
    for s in _samples(out):
        meta = json.loads(s["json"])
        n, fps = meta["n_frames"], meta["fps"]
        assert fps == 25
        frames = decode_frames(s["mp4"], list(range(n)))
        assert frames.shape == (n, 256, 256, 3)
        audio, sr = from_flac(s["flac"])
        assert sr == 16000 and abs(len(audio) / sr - n / fps) < 1 / fps
        src = meta["source_seconds"]
        assert abs(src["audio"] - src["video"]) < 1 / fps, (s["__key__"], src)
        mel = np.load(io.BytesIO(s["mel.npy"]))
        assert mel.shape == (4 * n, 80)
        assert np.load(io.BytesIO(s["lmk.npy"])).shape == (n, 478, 3)


def test_frame_rate_resampled_from_30_fps_and_vfr(real_shards):
    out, _ = real_shards
    metas = {s["__key__"]: json.loads(s["json"]) for s in _samples(out)}
    assert metas["retalking_face4-000"]["source_fps"] == 30 and metas["retalking_face4-000"]["n_frames"] == 165
    # variable frame rate: 135 frames over 6.1 s
    assert metas["retalking_face1-000"]["n_frames"] == 152
    assert metas["upperbody_kim_7s-000"]["source_size"] == [1920, 1080]


def test_landmarks_stay_on_the_face_in_the_crop(real_shards):
    """A fresh face mesh run on the stored crop finds the stored landmarks again."""
    import mediapipe as mp

    out, _ = real_shards
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)
    for s in _samples(out):
        meta = json.loads(s["json"])
        lmk = np.load(io.BytesIO(s["lmk.npy"]))
        idx = np.linspace(0, meta["n_frames"] - 1, 4).astype(int).tolist()
        for frame, i in zip(decode_frames(s["mp4"], idx), idx, strict=True):
            res = mesh.process(frame)
            assert res.multi_face_landmarks, f"{s['__key__']} frame {i}: no face in the crop"
            found = np.array([[p.x, p.y] for p in res.multi_face_landmarks[0].landmark]) * 256
            err = np.linalg.norm(found - lmk[i, :, :2], axis=1)
            assert np.median(err) < 4.0, f"{s['__key__']} frame {i}: landmarks off by {np.median(err):.1f} px"
        lips = lmk[:, landmarks.FORMATS["mediapipe478"]["lips"], :2]
        assert np.all((lips > 0) & (lips < 256)), f"{s['__key__']}: lips outside the crop"
        face_h = landmarks.face_height(lmk, "mediapipe478")
        assert 0.2 * 256 < np.median(face_h) < 0.8 * 256


def test_crop_does_not_jitter(real_shards):
    out, _ = real_shards
    for s in _samples(out):
        meta = json.loads(s["json"])
        boxes = np.array(meta["crop_boxes"])
        lmk = np.load(io.BytesIO(s["lmk.npy"]))
        assert np.ptp(boxes[:, 2]) < 1e-6  # fixed size per clip
        # second difference of the box in output pixels: well under a pixel per frame
        accel = np.abs(np.diff(boxes[:, :2], 2, axis=0)).max() * 256 / boxes[0, 2]
        assert accel < 0.5, f"{s['__key__']}: crop acceleration {accel:.2f} px/frame^2"
        assert np.isfinite(lmk).all()


def test_contact_sheet_shows_every_clip(real_shards, tmp_path):
    import cv2

    out, _ = real_shards
    png = contact_sheet(shard_urls(out, "train") + _val_urls(out), tmp_path / "sheet.png", per_clip=3, tile=96)
    img = cv2.imread(str(png))
    assert img.shape == (96 * 11, 96 * 3, 3)


def _val_urls(out):
    return sorted(map(str, out.glob("shard-val-*.tar")))


def test_rerun_skips_finished_inputs(real_shards, preprocess_cfg, clips_dir):
    from vlogger.preprocessing.run import preprocess

    out, _ = real_shards
    before = sorted(p.name for p in out.glob("shard-*.tar"))
    stats = preprocess(clips_dir, out, preprocess_cfg, workers=1)
    assert stats["skipped_done"] == 9 and stats["clips"] == 0
    assert sorted(p.name for p in out.glob("shard-*.tar")) == before


def test_two_ranks_read_disjoint_samples_covering_all(real_shards):
    """The training reader (read once, not resampled) gives each DDP rank its own shards."""
    out, _ = real_shards
    code = (
        "import sys; from vlogger.datasets.shards import shard_urls\n"
        "from vlogger.datasets.motion import ToMotionWindows\n"
        "from vlogger.datasets.windows import window_stream\n"
        "mapper = ToMotionWindows(25, 2, 25, 16, None, 0)\n"
        "print(' '.join(sorted({w['key'] for w in window_stream(shard_urls(sys.argv[1]), mapper)})))"
    )
    keys = []
    for rank in range(2):
        env = {"RANK": str(rank), "WORLD_SIZE": "2", "PATH": ""}
        res = subprocess.run(
            [sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True, check=True
        )
        keys.append(res.stdout.split())
    index = json.loads((out / "index.json").read_text())
    train = sorted(c["key"] for c in index["clip_list"] if c["split"] == "train")
    assert keys[0] and keys[1]
    assert not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == train


def test_reader_windows_and_far_reference(real_shards):
    out, _ = real_shards
    window, n = 50, 0
    urls = all_shard_urls(out)
    for w in window_stream(urls, ToMotionWindows(window, 2, 25, 16, per_clip=2, seed=0)):
        assert w["motion"].shape[0] == window and w["mel"].shape == ((window + 4) * 4, 80)
        ref, s = w["ref_index"], w["start"]
        assert ref < s - 25 or ref >= s + window + 25  # every real clip is long enough for a far reference
        n += 1
    assert n == 22


def test_dataloader_workers_each_read_their_own_shards(real_shards):
    """torch DataLoader with 2 workers: every clip once per epoch."""
    out, _ = real_shards
    urls = all_shard_urls(out)
    ds = window_stream(urls, ToMotionWindows(25, 2, 25, 16, per_clip=1, seed=0))
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    keys = []
    for batch in loader:
        assert batch["motion"].dtype == torch.float32 and batch["mel"].shape[1:] == (29 * 4, 80)
        keys += batch["key"]
    index = json.loads((out / "index.json").read_text())
    assert sorted(keys) == sorted(c["key"] for c in index["clip_list"])
