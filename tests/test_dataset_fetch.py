"""`vlogger dataset fetch` against a local HTTP server on 127.0.0.1 serving real clips in place of
YouTube: names and durations, a 404 and a span past the end in failed.jsonl, a killed run resumed
without downloading again, the identities preprocessing reads; CelebV-HQ and TalkingHead-1KH alike.

The HDTF annotation set here is a few real lines of the official files (names, URLs, BOM) whose
spans and crops are rewritten to fit the 8-s clips served for those video ids.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.video import decode_frames, probe
from vlogger.preprocessing.recipes import celebvhq, talkinghead1kh
from vlogger.preprocessing.recipes.download import Mirror, Transient, Unavailable, with_retries
from vlogger.preprocessing.recipes.fetch import fetch
from vlogger.preprocessing.recipes.spec import Source, youtube_id


class ClipServer:
    """Serves {id}.mp4 from a mapping id -> file; logs requests; can stall one id halfway."""

    def __init__(self, files: dict[str, Path]):
        self.files, self.requests, self.stall, self.release = files, [], None, threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                vid = self.path.strip("/").removesuffix(".mp4")
                server.requests.append(vid)
                if vid not in server.files:
                    self.send_error(404, "Video unavailable")
                    return
                data = server.files[vid].read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if vid == server.stall:  # half the file, then hang until released (a run killed mid-download)
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    server.release.wait(60)
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.template = f"http://127.0.0.1:{self.httpd.server_port}/{{id}}.mp4"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()


def _url_line(real: Path, group: str, name: str) -> str:
    for line in (real / f"{group}_video_url.txt").read_text(encoding="utf-8-sig").splitlines():
        if line.split() and line.split()[0] == name:
            return line
    raise AssertionError(name)


def write_hdtf_set(real: Path, folder: Path) -> dict[str, str]:
    """A small annotation set in the official format; returns video name -> YouTube id."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = {
        "RD": {"Radio2": "00:01-00:04", "Radio9": "00:10-00:20"},  # Radio9 is not served: 404
        "WDA": {"KatieHill": "00:01-00:03 00:04-00:06", "EdMarkey0": "00:00-00:03 00:05-00:10"},  # 00:10 > 8 s
        "WRA": {},
    }
    ids = {}
    for group, videos in lines.items():
        urls = [_url_line(real, group, n) for n in videos]
        ids |= {u.split()[0]: youtube_id(u.split()[1]) for u in urls}
        bom = "\ufeff" if group == "WDA" else ""  # as the official WDA_video_url.txt
        (folder / f"{group}_video_url.txt").write_text(bom + "\n".join(urls) + "\n", encoding="utf-8")
        (folder / f"{group}_annotion_time.txt").write_text("".join(f"{n}.mp4 {t} \n" for n, t in videos.items()))
        (folder / f"{group}_resolution.txt").write_text("".join(f"{n}.mp4 512\n" for n in videos))
        clips = [f"{n}_{k}.mp4" for n, t in videos.items() for k in range(len(t.split()))]
        (folder / f"{group}_crop_wh.txt").write_text("".join(f"{c} 64 384 32 384\n" for c in clips))
        (folder / f"{group}_crop_ratio.txt").write_text("".join(f"{c} 1.2\n" for c in clips))
    return ids


@pytest.fixture
def hdtf_server(hdtf_annotations, shared_dir, tmp_path):
    ann = tmp_path / "ann"
    ids = write_hdtf_set(hdtf_annotations, ann)
    data = shared_dir / "data"
    server = ClipServer(
        {
            ids["Radio2"]: data / "corpus" / "sadtalker_RD_Radio2_000.mp4",
            ids["KatieHill"]: data / "clips" / "hdtf_WDA_KatieHill_000.mp4",
            ids["EdMarkey0"]: data / "corpus" / "sadtalker_WDA_EdMarkey0_000.mp4",
        }
    )
    yield ann, ids, server
    server.close()


def _fetch_cli(ann: Path, out: Path, template: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vlogger.cli",
        "dataset",
        "fetch",
        "hdtf",
        "--annotations",
        str(ann),
        "--out",
        str(out),
        "--mirror",
        template,
        "--workers",
        "1",
        "--size",
        "256",
        "--set",
        "download.backoff_seconds=0.01",
        "--set",
        "download.timeout_seconds=20",
        *extra,
    ]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_hdtf_fetch_names_durations_failures_identities(hdtf_server, shared_dir, tmp_path):
    ann, ids, server = hdtf_server
    out = tmp_path / "raw"
    res = subprocess.run(_fetch_cli(ann, out, server.template), capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    manifest = [json.loads(ln) for ln in (out / "manifest.jsonl").read_text().splitlines()]
    got = {e["file"]: e for e in manifest}
    assert sorted(got) == ["RD/Radio2_0.mp4", "WDA/EdMarkey0_0.mp4", "WDA/KatieHill_0.mp4", "WDA/KatieHill_1.mp4"]
    for rel, seconds in {"RD/Radio2_0.mp4": 3, "WDA/EdMarkey0_0.mp4": 3, "WDA/KatieHill_0.mp4": 2}.items():
        info = probe(out / "clips" / rel)
        assert info.n_frames == seconds * 25 and abs(info.duration - seconds) < 1e-6
        assert (info.width, info.height) == (256, 256) and info.has_audio
        assert got[rel]["crop"] == [64, 32, 448, 416] and got[rel]["crop_ratio"] == 1.2
    assert got["WDA/KatieHill_1.mp4"]["start"] == 4.0 and got["WDA/KatieHill_1.mp4"]["end"] == 6.0
    # its first frame is the source's frame at 4 s inside the window, not another one
    src = shared_dir / "data" / "clips" / "hdtf_WDA_KatieHill_000.mp4"
    first = decode_frames((out / "clips" / "WDA" / "KatieHill_1.mp4").read_bytes(), [0])[0].astype(float)
    window = [
        cv2.resize(f[32:416, 64:448], (256, 256), interpolation=cv2.INTER_AREA).astype(float)
        for f in decode_frames(src.read_bytes(), [100, 50])
    ]
    assert np.abs(first - window[0]).mean() < 0.5 * np.abs(first - window[1]).mean()
    failed = {c: e for e in map(json.loads, (out / "failed.jsonl").read_text().splitlines()) for c in e["clips"]}
    assert sorted(failed) == ["EdMarkey0_1", "Radio9_0"]
    assert "HTTP 404" in failed["Radio9_0"]["reason"] and failed["Radio9_0"]["permanent"]
    assert "past the video's end (8.00 s)" in failed["EdMarkey0_1"]["reason"]
    # identities for preprocessing, in the format `vlogger preprocess --identities` reads, person not video
    identities = yaml.safe_load((out / "identities.yaml").read_text())
    assert identities == {
        "RD/Radio2_0.mp4": "Radio2",
        "WDA/EdMarkey0_0.mp4": "EdMarkey",
        "WDA/KatieHill_0.mp4": "KatieHill",
        "WDA/KatieHill_1.mp4": "KatieHill",
    }
    overlay = load_config(out / "preprocess.yaml", "preprocess/default.yaml")
    assert overlay["shards"]["identities"] == str((out / "identities.yaml").resolve())
    assert overlay["shards"]["test_identities"] == hdtf_default_holdout()
    assert not list((out / "videos").iterdir())  # sources deleted once cut
    assert sorted(server.requests) == sorted([ids["Radio2"], ids["Radio9"], ids["KatieHill"], ids["EdMarkey0"]])
    # a second run does nothing: no request, the same manifest
    n = len(server.requests)
    res = subprocess.run(_fetch_cli(ann, out, server.template), capture_output=True, text=True, env=_env())
    assert res.returncode == 0 and len(server.requests) == n
    assert "0 new, 0 failed" in res.stdout and (out / "manifest.jsonl").read_text().count("\n") == 4


def hdtf_default_holdout() -> list[str]:
    items = yaml.safe_load((REPO_ROOT / "configs" / "benchmarks" / "hdtf-test.yaml").read_text())["items"]
    return sorted(it["identity"] for it in items)


def test_killed_run_resumes_without_downloading_again(hdtf_server, tmp_path):
    ann, ids, server = hdtf_server
    out = tmp_path / "raw"
    server.stall = ids["KatieHill"]  # RD first (Radio2, Radio9), then KatieHill hangs halfway
    proc = subprocess.Popen(
        _fetch_cli(ann, out, server.template),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    part = out / "videos" / f"{ids['KatieHill']}.mp4.part"
    deadline = time.time() + 60
    while not (part.is_file() and part.stat().st_size > 0) and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    server.release.set()
    assert part.is_file() and not (out / "videos" / f"{ids['KatieHill']}.mp4").exists()
    assert (out / "clips" / "RD" / "Radio2_0.mp4").is_file()
    assert not (out / "manifest.jsonl").exists()  # killed before the merge
    before = list(server.requests)
    assert before == [ids["Radio2"], ids["Radio9"], ids["KatieHill"]]
    server.stall = None
    res = subprocess.run(_fetch_cli(ann, out, server.template), capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    # Radio2 (done) and Radio9 (404 for good) are not asked for again; the half download was not taken
    assert server.requests[len(before) :] == [ids["KatieHill"], ids["EdMarkey0"]]
    assert "1 clips already done" in res.stdout
    names = sorted(json.loads(ln)["name"] for ln in (out / "manifest.jsonl").read_text().splitlines())
    assert names == ["EdMarkey0_0", "KatieHill_0", "KatieHill_1", "Radio2_0"]
    assert probe(out / "clips" / "WDA" / "KatieHill_0.mp4").n_frames == 50
    assert not list(out.glob("**/*.part"))


def test_yt_dlp_messages_sorted_into_gone_and_try_again():
    from vlogger.preprocessing.recipes.download import youtube_failure

    gone = [
        "[youtube] CPCoMyuBRM0: Video unavailable. This video has been removed by the uploader",
        "[youtube] abc: Private video. Sign in if you've been granted access to this video",
        "[youtube] abc: Video unavailable. The uploader has not made this video available in your country",
        "[youtube] abc: This video is no longer available because the YouTube account associated with this video "
        "has been terminated.",
    ]
    again = [
        "[youtube] abc: Unable to download API page: HTTP Error 429: Too Many Requests",
        "[youtube] abc: Sign in to confirm you're not a bot. This helps protect our community.",
        "[download] Got error: HTTP Error 503: Service Temporarily Unavailable",
        "[youtube] abc: Read timed out.",
    ]
    assert [youtube_failure(m) for m in gone] == [Unavailable] * 4
    assert [youtube_failure(m) for m in again] == [Transient] * 4


def test_retries_back_off_then_give_up(tmp_path):
    calls, waits = [], []

    def flaky():
        calls.append(1)
        raise Transient("HTTP 429 Too Many Requests")

    with pytest.raises(Transient):
        with_retries(flaky, retries=3, backoff=2.0, sleep=waits.append)
    assert len(calls) == 4 and [round(w / b, 2) <= 1.25 for w, b in zip(waits, [2, 4, 8], strict=True)] == [True] * 3
    assert all(w >= b for w, b in zip(waits, [2, 4, 8], strict=True))
    with pytest.raises(Unavailable, match="not in the mirror folder"):
        Mirror(str(tmp_path / "{id}.mp4"), 5).fetch(Source("abc", "u"), tmp_path)


@pytest.fixture
def served_clips(clips_dir):
    server = ClipServer(
        {"vidA0000000": clips_dir / "retalking_face2.mp4", "vidB0000000": clips_dir / "liveportrait_d20.mp4"}
    )
    yield server
    server.close()


def celebvhq_clip(vid: str, start: float, end: float, box: tuple = (0.0, 1.0, 0.0, 1.0)) -> dict:
    """One entry of celebvhq_info.json's "clips", as the official file has it (bbox: top, bottom, left, right)."""
    return {
        "ytb_id": vid,
        "duration": {"start_sec": start, "end_sec": end},
        "bbox": dict(zip(("top", "bottom", "left", "right"), box, strict=True)),
        "version": "v0.1",
    }


def test_celebvhq_fetch(served_clips, tmp_path):
    box = (0.1, 0.9, 0.2, 0.8)
    info = {
        "meta_info": {},
        "clips": {
            "vidA0000000_0": celebvhq_clip("vidA0000000", 0.5, 2.5, box),
            "vidA0000000_1": celebvhq_clip("vidA0000000", 3.0, 9.0, box),  # a 5-s video
            "vidB0000000_0": celebvhq_clip("vidB0000000", 1.0, 4.0),
            "gone0000000_0": celebvhq_clip("gone0000000", 1.0, 4.0),
        },
    }
    (tmp_path / "celebvhq_info.json").write_text(json.dumps(info))
    cfg = load_config(None, "dataset/fetch.yaml", ["cut.size=128", "download.backoff_seconds=0.01"])
    recipe = celebvhq.parse(tmp_path / "celebvhq_info.json")
    stats = fetch(recipe, tmp_path / "raw", Mirror(served_clips.template, 20), cfg, workers=2)
    assert (stats["clips"], stats["failed_clips"]) == (2, 2)
    a = probe(tmp_path / "raw" / "clips" / "vidA0000000_0.mp4")
    assert (a.n_frames, a.width) == (50, 128)
    entries = {
        json.loads(ln)["name"]: json.loads(ln) for ln in (tmp_path / "raw" / "manifest.jsonl").read_text().splitlines()
    }
    # 844x844 source, box grown by 0.02 -> 0.18..0.82 x 0.08..0.92, centred square of the shorter side (540 px)
    assert (
        entries["vidA0000000_0"]["crop"] == [152, 152, 692, 692]
        and entries["vidA0000000_0"]["identity"] == "vidA0000000"
    )
    reasons = {
        c: e["reason"]
        for e in map(json.loads, (tmp_path / "raw" / "failed.jsonl").read_text().splitlines())
        for c in e["clips"]
    }
    assert "HTTP 404" in reasons["gone0000000_0"] and "past the video's end" in reasons["vidA0000000_1"]
    assert yaml.safe_load((tmp_path / "raw" / "identities.yaml").read_text()) == {
        "vidA0000000_0.mp4": "vidA0000000",
        "vidB0000000_0.mp4": "vidB0000000",
    }


def test_talkinghead1kh_fetch(served_clips, tmp_path):
    (tmp_path / "small_video_ids.txt").write_text("vidB0000000\nvidA0000000\ngone0000000\n")
    (tmp_path / "small_video_tubes.txt").write_text(
        "vidB0000000_0000, 480, 480, 25, 99, 40, 20, 440, 420\n"  # frames 25..99 of minute 0: 1-4 s
        "vidA0000000_0000, 844, 844, 0, 49, 0, 0, 422, 422\n"
        "vidA0000000_0001, 844, 844, 0, 49, 0, 0, 422, 422\n"  # minute 1 of a 5-s video
        "gone0000000_0000, 720, 1280, 0, 49, 0, 0, 100, 100\n"
    )
    cfg = load_config(None, "dataset/fetch.yaml", ["cut.size=0", "download.backoff_seconds=0.01"])
    recipe = talkinghead1kh.parse(tmp_path / "small_video_tubes.txt")
    stats = fetch(recipe, tmp_path / "raw", Mirror(served_clips.template, 20), cfg, workers=1)
    assert (stats["clips"], stats["failed_clips"]) == (2, 2)
    b = probe(tmp_path / "raw" / "clips" / "vidB0000000_0000_S25_E99_L40_T20_R440_B420.mp4")
    assert (b.n_frames, b.width, b.height) == (75, 400, 400)
    a = probe(tmp_path / "raw" / "clips" / "vidA0000000_0000_S0_E49_L0_T0_R422_B422.mp4")
    assert (a.n_frames, a.width) == (50, 422)
    failed = (tmp_path / "raw" / "failed.jsonl").read_text()
    assert "vidA0000000_0001_S0_E49" in failed and "HTTP 404" in failed


@pytest.mark.slow
def test_make_preprocess_dataset_hdtf(hdtf_server, tmp_path):
    """`make preprocess DATASET=hdtf` with the fetch pointed at the local mirror: fetch -> preprocess
    (identities from the fetch, a held-out person in the test split) -> index.json."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ann, _, server = hdtf_server
    bench = tmp_path / "bench.yaml"
    bench.write_text(yaml.safe_dump({"items": [{"identity": "KatieHill"}]}))
    fetch_args = f"--holdout {bench} --crop none --set download.backoff_seconds=0.01"
    cmd = [
        "make",
        "-o",
        "setup",
        "preprocess",
        "DATASET=hdtf",
        f"ANNOTATIONS={ann}",
        f"MIRROR={server.template}",
        f"RAW={tmp_path / 'raw'}",
        f"OUT={tmp_path / 'shards'}",
        f"BIN={Path(sys.executable).parent}",
        "WORKERS=1",
        f"FETCH_ARGS={fetch_args}",
    ]
    res = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    index = json.loads((tmp_path / "shards" / "index.json").read_text())
    clips = {c["key"]: c for c in index["clip_list"]}
    assert {c["identity"] for c in clips.values()} == {"Radio2", "EdMarkey", "KatieHill"}
    assert {k: c["identity"] for k, c in clips.items() if k.startswith("WDA__KatieHill")} == {
        "WDA__KatieHill_0-000": "KatieHill",
        "WDA__KatieHill_1-000": "KatieHill",
    }
    assert index["splits"]["test"]["identities"] == ["KatieHill"]
    assert "KatieHill" not in index["splits"].get("train", {}).get("identities", [])
    assert (tmp_path / "shards" / "rejected.jsonl").exists()


def test_yt_dlp_downloader_video_and_audio_apart(served_clips, tmp_path):
    """The YouTube downloader's yt-dlp path, run by yt-dlp's generic extractor on the local server:
    video and audio fetched as two files (no ffmpeg merge), cut together; a 404 is for good."""
    pytest.importorskip("yt_dlp")
    from vlogger.preprocessing.recipes.download import YouTube
    from vlogger.preprocessing.recipes.spec import Clip, Recipe

    url = served_clips.template.format(id="vidB0000000")
    sources = {
        "vidB0000000": Source("vidB0000000", url),
        "gone0000000": Source("gone0000000", url.replace("vidB", "gone")),
    }
    clips = [Clip("b_0", "", "vidB0000000", 1.0, 3.0, "b"), Clip("g_0", "", "gone0000000", 1.0, 3.0, "g")]
    cfg = load_config(None, "dataset/fetch.yaml", ["download.backoff_seconds=0.01", "download.keep_videos=true"])
    stats = fetch(Recipe(sources, clips), tmp_path, YouTube("best", 20), cfg, workers=1)
    assert (stats["clips"], stats["failed_clips"]) == (1, 1)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["vidB0000000.audio.mp4", "vidB0000000.video.mp4"]
    info = probe(tmp_path / "clips" / "b_0.mp4")
    assert info.n_frames == 50 and info.has_audio
    # the audio is seconds 1-3 of the source's, in step with the frames
    from vlogger.core.audio import load_audio

    got = load_audio(tmp_path / "clips" / "b_0.mp4", 16000, info.start_time)[: 2 * 16000]
    src = served_clips.files["vidB0000000"]
    want = load_audio(src, 16000, probe(src).start_time)[16000 : 3 * 16000]
    assert np.corrcoef(got[: len(want)], want[: len(got)])[0, 1] > 0.95
    failed = json.loads((tmp_path / "failed.jsonl").read_text())
    assert failed["permanent"] and "404" in failed["reason"]


def test_array_jobs_split_the_sources_then_merge(served_clips, tmp_path):
    """The cluster path: jobs take every n-th source video; `--merge` joins their records."""
    info = {
        "clips": {f"vid{x}0000000_{k}": celebvhq_clip(f"vid{x}0000000", k, k + 1.5) for x in "AB" for k in range(2)}
    }
    (tmp_path / "info.json").write_text(json.dumps(info))
    cfg = load_config(None, "dataset/fetch.yaml", ["cut.size=64"])
    recipe = celebvhq.parse(tmp_path / "info.json")
    raw = tmp_path / "raw"
    for job in range(2):
        stats = fetch(recipe, raw, Mirror(served_clips.template, 20), cfg, num_shards=2, shard_index=job)
        assert (stats["videos"], stats["clips"]) == (1, 2)
    assert sorted(p.name for p in (raw / "parts").glob("clips-*.jsonl")) == ["clips-000.jsonl", "clips-001.jsonl"]
    assert not (raw / "manifest.jsonl").exists()  # jobs of an array leave the join to --merge
    cmd = [
        sys.executable,
        "-m",
        "vlogger.cli",
        "dataset",
        "fetch",
        "celebvhq",
        "--annotations",
        str(tmp_path / "info.json"),
        "--out",
        str(raw),
        "--merge",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    assert f"in {raw}: 4 clips" in res.stdout and "2 people; 0 clips failed" in res.stdout
    assert len(yaml.safe_load((raw / "identities.yaml").read_text())) == 4


def test_cut_refuses_a_window_outside_the_frame(clips_dir, tmp_path):
    from vlogger.core.errors import BadInput
    from vlogger.preprocessing.recipes.cut import cut
    from vlogger.preprocessing.recipes.spec import Crop

    enc = load_config(None, "dataset/fetch.yaml")["cut"]
    dest = tmp_path / "x.mp4"
    window = Crop((600, 600, 900, 900), (512, 512))  # a 512 px clip: the window lies beyond it
    with pytest.raises(BadInput, match="outside the 512x512 frame"):
        cut(clips_dir / "hdtf_WDA_KatieHill_000.mp4", None, dest, (1.0, 2.0), window, 0, enc)
    assert list(tmp_path.iterdir()) == []
