"""Parsers of the official annotation files: every line of HDTF's real files, CelebV-HQ's json and
TalkingHead-1KH's lists in their official formats, and the hdtf-test benchmark selection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from vlogger.core.config import CONFIG_DIR
from vlogger.core.errors import BadInput
from vlogger.preprocessing.recipes import celebvhq, hdtf, talkinghead1kh
from vlogger.preprocessing.recipes.spec import Crop, youtube_id


def test_every_hdtf_line_parses(hdtf_annotations):
    recipe = hdtf.parse(hdtf_annotations)
    # 370 URLs; Radio24 has no spans; WhipJimClyburn and JamesClyburn1 are one YouTube video
    assert len(recipe.sources) == 368
    # 436 spans annotated; MittRomney's second (00:33-08:53 after 08:10-08:30) overlaps its first
    assert [(r["clip"], r["video"]) for r in recipe.invalid] == [("MittRomney_1", "YFTuC5omdYA")]
    assert len(recipe.clips) == 435
    assert {g: sum(c.folder == g for c in recipe.clips) for g in hdtf.GROUPS} == {"RD": 66, "WDA": 195, "WRA": 174}
    hours = sum(c.end - c.start for c in recipe.clips) / 3600
    assert 15.5 < hours < 17  # "about 16 hours"
    # every line of every time file parses; the clips of each video are ordered and do not overlap
    for group in hdtf.GROUPS:
        spans = hdtf.parse_spans(hdtf_annotations / f"{group}_annotion_time.txt")
        text = (hdtf_annotations / f"{group}_annotion_time.txt").read_text(encoding="utf-8-sig")
        assert len(spans) == len([ln for ln in text.splitlines() if ln.strip()])
        assert sum(map(len, spans.values())) == {"RD": 66, "WDA": 195, "WRA": 175}[group]
    for video in {c.extra["video"] for c in recipe.clips}:
        pairs = [(c.start, c.end) for c in recipe.clips if c.extra["video"] == video]
        assert all(a < b <= c < d for (a, b), (c, d) in itertools.pairwise(pairs)), video
    names = {c.name for c in recipe.clips}
    assert {"Radio11_0", "Radio11_1", "Radio34_9", "AmyKlobuchar1_3"} <= names and "Radio11_2" not in names
    radio11 = [c for c in recipe.clips if c.extra["video"] == "Radio11"]
    assert [(c.start, c.end) for c in radio11] == [(30.0, 60.0), (90.0, 150.0)]


def test_hdtf_people_crops_and_the_bom(hdtf_annotations):
    recipe = hdtf.parse(hdtf_annotations)
    by = {c.name: c for c in recipe.clips}
    # the first WDA URL line starts with a byte-order mark: its video is still found
    first = (hdtf_annotations / "WDA_video_url.txt").read_text(encoding="utf-8-sig").split()[0]
    assert (hdtf_annotations / "WDA_video_url.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert f"{first}_0" in by and by[f"{first}_0"].source == youtube_id(
        (hdtf_annotations / "WDA_video_url.txt").read_text(encoding="utf-8-sig").split()[1]
    )
    assert by["AmyKlobuchar0_0"].identity == by["AmyKlobuchar1_0"].identity == "AmyKlobuchar"
    assert by["WhipJimClyburn_0"].identity == by["JamesClyburn1_0"].identity == by["JamesClyburn_0"].identity
    assert by["WhipJimClyburn_0"].source == by["JamesClyburn1_0"].source
    assert by["Radio1_0"].identity != by["Radio2_0"].identity
    # Radio10_0.mp4 483 390 0 390 at 720 p: a 390 px window from x=483; at 1080 p scaled by 1.5
    assert by["Radio10_0"].crop.pixels(1280, 720) == (483, 0, 873, 390)
    assert by["Radio10_0"].crop.pixels(1920, 1080) == (724, 0, 1310, 584)
    assert by["Radio10_0"].extra["crop_ratio"] == 1.0
    assert by["Radio15_0"].crop is None  # no crop_wh line: the full frame
    assert by["KevinMcCarthy1_0"].crop is None  # resolution 0: unknown scale
    assert sum(c.crop is None for c in recipe.clips) == 16


def test_bad_hdtf_line_names_file_and_line(tmp_path, hdtf_annotations):
    for f in hdtf_annotations.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "RD_annotion_time.txt").write_text("Radio1.mp4 00:20-01:35\nRadio2.mp4 01:45-00:22\n")
    with pytest.raises(BadInput, match=r"RD_annotion_time.txt: line 2"):
        hdtf.parse(tmp_path)


def test_hdtf_benchmark_is_the_rule_applied_to_the_annotations(hdtf_annotations):
    from vlogger.benchmark.manifest import load_manifest

    path = CONFIG_DIR / "benchmarks" / "hdtf-test.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert len(load_manifest(path).items) == len(manifest["items"])  # the benchmark's own schema check
    assert {"name", "version", "protocol", "data_root", "description", "selection", "items"} <= set(manifest)
    assert manifest["name"] == "hdtf-test" and not Path(manifest["data_root"]).is_absolute()
    protocol = yaml.safe_load((CONFIG_DIR / "eval" / "protocol.yaml").read_text())["version"]
    assert manifest["protocol"] == protocol
    recipe = hdtf.parse(hdtf_annotations)
    assert manifest["items"] == hdtf.benchmark_selection(recipe)  # regenerated: the same items
    clips = {f"clips/{c.rel}": c for c in recipe.clips}
    for it in manifest["items"]:
        assert set(it) == {"id", "identity", "video", "start", "end", "reference", "audio"}
        c = clips[it["video"]]
        assert it["identity"] == c.identity
        assert not it["start"] <= it["reference"]["frame"] < it["end"]
        assert 0 <= it["start"] < it["end"] <= c.end - c.start
    held = {it["identity"] for it in manifest["items"]}
    assert len(held) == len(manifest["items"]) == sum(hdtf.HOLDOUT.values())
    # people, not clips: every clip of a held-out person (all their videos) goes to the test split
    from vlogger.preprocessing.splits import split_of

    for c in recipe.clips:
        assert (split_of(c.identity, 0.1, sorted(held)) == "test") == (c.identity in held)
    assert {c.extra["video"] for c in recipe.clips if c.identity == "NancyPelosi"} == {
        "NancyPelosi0",
        "NancyPelosi1",
        "NancyPelosi3",
    }


def test_celebvhq_official_json(tmp_path):
    info = {
        "meta_info": {"appearance_mapping": ["Blurry"], "action_mapping": ["blow"]},
        "clips": {
            "M2Ohb0FAaJU_1": {
                "ytb_id": "M2Ohb0FAaJU",
                "duration": {"start_sec": 81.62, "end_sec": 86.17},
                "bbox": {"top": 0.0, "bottom": 0.8815, "left": 0.1964, "right": 0.6922},
                "attributes": {},
                "version": "v0.1",
            },
            "M2Ohb0FAaJU_2": {
                "ytb_id": "M2Ohb0FAaJU",
                "duration": {"start_sec": 90.0, "end_sec": 95.5},
                "bbox": {"top": 0.1, "bottom": 0.9, "left": 0.3, "right": 0.7},
                "version": "v0.1",
            },
            "_0tf2n3rlJU_0": {
                "ytb_id": "_0tf2n3rlJU",
                "duration": {"start_sec": 52.72, "end_sec": 56.1},
                "bbox": {"top": 0.0, "bottom": 0.8407, "left": 0.5271, "right": 1.0},
                "version": "v0.1",
            },
        },
    }
    path = tmp_path / "celebvhq_info.json"
    path.write_text(json.dumps(info))
    recipe = celebvhq.parse(path)
    assert list(recipe.sources) == ["M2Ohb0FAaJU", "_0tf2n3rlJU"]
    c = recipe.clips[0]
    assert (c.name, c.source, c.identity, c.start, c.end) == (
        "M2Ohb0FAaJU_1",
        "M2Ohb0FAaJU",
        "M2Ohb0FAaJU",
        81.62,
        86.17,
    )
    # the official rule at 1280x720: grow by 0.02, to pixels, centred square of the shorter side
    x0, y0, x1, y1 = c.crop.pixels(1280, 720)
    assert x1 - x0 == y1 - y0 == 648 and y0 == 0
    assert abs((x0 + x1) / 2 - (0.1764 + 0.7122) / 2 * 1280) <= 1
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"clips": {"x_0": {"ytb_id": "x", "bbox": {}}}}))
    with pytest.raises(BadInput, match="clip x_0"):
        celebvhq.parse(broken)


def test_talkinghead1kh_official_lists(tmp_path):
    (tmp_path / "small_video_ids.txt").write_text("--Y9imYnfBw\nabcdefghijk\n")
    (tmp_path / "small_video_tubes.txt").write_text(
        "--Y9imYnfBw_0000, 720, 1280, 0, 271, 504, 63, 792, 351\n"
        "--Y9imYnfBw_0002, 720, 1280, 10, 99, 500, 60, 788, 348\n"
        "notlisted00_0000, 720, 1280, 0, 50, 0, 0, 100, 100\n"
    )
    recipe = talkinghead1kh.parse(tmp_path / "small_video_tubes.txt")
    assert list(recipe.sources) == ["--Y9imYnfBw", "abcdefghijk"]
    assert [c.name for c in recipe.clips] == [
        "--Y9imYnfBw_0000_S0_E271_L504_T63_R792_B351",
        "--Y9imYnfBw_0002_S10_E99_L500_T60_R788_B348",
    ]
    c = recipe.clips[1]
    assert c.identity == "--Y9imYnfBw" and c.span(25.0) == (120.4, 124.0)  # frames 10..99 of minute 2
    assert c.crop.pixels(1920, 1080) == (750, 90, 1182, 522)  # the tube's window scaled to the download
    (tmp_path / "bad_video_tubes.txt").write_text("x_0000, 720, 1280, 0\n")
    with pytest.raises(BadInput, match="line 1"):
        talkinghead1kh.parse(tmp_path / "bad_video_tubes.txt")


def test_crop_square_and_inside_the_frame():
    assert Crop((0.0, 0.0, 1.0, 0.5), (1.0, 1.0), square=True).pixels(400, 200) == (150, 0, 250, 100)
    assert Crop((-10, -10, 300, 300), (200, 200)).pixels(200, 200) == (0, 0, 200, 200)
