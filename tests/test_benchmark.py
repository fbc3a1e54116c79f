"""Benchmarks: manifests, prepared items and baselines, a checkpoint's run (resumed, sharded and
merged), other methods' videos, and the leaderboard views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vlogger.benchmark.manifest import load_manifest, make_manifest
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.errors import BadInput
from vlogger.evaluation import leaderboard as board

PEOPLE = ["retalking_face5", "retalking_face2"]  # the shortest real clips: tracking them is the test's cost


def _write(tmp_path: Path, manifest: dict) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


PROTOCOL = str(load_config(None, "eval/protocol.yaml")["version"])  # the version shipped manifests are made under
ITEM = {"id": "a", "video": "clips/a.mp4", "start": 1.0, "end": 3.0, "reference": {"frame": 0.0}, "audio": "own"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"video": "/abs/a.mp4"}, "relative to the data root"),
        ({"reference": {"frame": 2.0}}, "lies inside the segment"),
        ({"reference": {"pose": 1}}, "reference is {frame: seconds} or {image: path}"),
        ({"end": 0.5}, "is not after start"),
        ({"id": "a/b"}, "file-name-safe"),
    ],
)
def test_manifest_errors_name_the_file_and_the_item(tmp_path, change, message):
    path = _write(tmp_path, {"name": "x", "version": 1, "protocol": "1.0", "items": [{**ITEM, **change}]})
    with pytest.raises(BadInput, match=message) as e:
        load_manifest(path)
    assert str(path) in str(e.value) and "item 0" in str(e.value)


def test_duplicate_ids_and_unknown_keys_are_refused(tmp_path):
    path = _write(tmp_path, {"name": "x", "version": 1, "protocol": "1.0", "items": [ITEM, ITEM]})
    with pytest.raises(BadInput, match="duplicate item ids: \\['a'\\]"):
        load_manifest(path)
    path = _write(tmp_path, {"name": "x", "version": 1, "protocol": "1.0", "items": [ITEM], "split": "test"})
    with pytest.raises(BadInput, match="unknown manifest keys \\['split'\\]"):
        load_manifest(path)


def test_make_is_deterministic_refuses_short_clips_and_keeps_people_together(tmp_path, shared_dir):
    root = shared_dir / "data"
    corpus = root / "corpus"
    ids = str(REPO_ROOT / "configs/identities/corpus.yaml")
    one, refused = make_manifest(corpus, root, "t", "1.0", 3.0, 1.0, ids, people=["voxceleb2_741400", "mead_M003"])
    two, _ = make_manifest(corpus, root, "t", "1.0", 3.0, 1.0, ids, people=["voxceleb2_741400", "mead_M003"])
    assert one.to_yaml() == two.to_yaml()
    # both files of each person, except the 2.5 s clip: 1 s + 3 s does not fit, and it is named
    assert [i.id for i in one.items] == [
        "pcavs_Audio_Source_741400104",
        "pcavs_Pose_Source_741400163",
        "spectre_mead_M003_level_1_disgusted_015",
    ]
    assert list(refused) == ["spectre_mead_M003_level_1_happy_024.mp4"] and "too short: 2.52 s" in next(
        iter(refused.values())
    )
    assert one.identities() == ["mead_M003", "voxceleb2_741400"]
    assert all(i.video.startswith("corpus/") and i.end == 4.0 for i in one.items)
    path = tmp_path / "m.yaml"
    path.write_text(one.to_yaml())
    assert load_manifest(path).items == one.items  # what make writes, load reads back


def test_shipped_manifest_holds_out_enough_people(shared_dir):
    """corpus-val: at least 8 people and 60 s, every file of a held-out person in it (same-person groups whole)."""
    from vlogger.core.video import probe
    from vlogger.preprocessing.splits import identity_of

    m = load_manifest(REPO_ROOT / "configs/benchmarks/corpus-val.yaml")
    root = shared_dir / "data"
    seconds = sum((i.end or probe(root / i.video).duration) - i.start for i in m.items)
    assert len(m.identities()) >= 8 and seconds >= 60
    assert m.protocol == str(load_config(None, "eval/protocol.yaml")["version"])
    people = set(m.identities())
    corpus = [p.name for p in (root / "corpus").iterdir() if p.suffix in (".mp4", ".mpg")]
    held = {
        f"corpus/{f}"
        for f in corpus
        if identity_of(f, "stem", str(REPO_ROOT / "configs/identities/corpus.yaml")) in people
    }
    assert held == {i.video for i in m.items}


@pytest.fixture(scope="module")
def bench(shared_dir, tmp_path_factory) -> dict:
    """Two real 3-s items at 128 px, and a folder for prepared items of the default data spec."""
    tmp = tmp_path_factory.mktemp("bench")
    root = shared_dir / "data"
    manifest, _ = make_manifest(root / "clips", root, "two", PROTOCOL, 3.0, 1.0, people=PEOPLE)
    manifest.size = 128
    (tmp / "two.yaml").write_text(manifest.to_yaml())
    return {"manifest": str(tmp / "two.yaml"), "root": str(root), "items": str(tmp / "items"), "tmp": tmp}


@pytest.fixture(scope="module")
def prepared(bench) -> Path:
    """The two items prepared with today's default data spec (what baselines and `score` use)."""
    from vlogger.benchmark.items import prepare
    from vlogger.generation.pipeline import BodyFiles
    from vlogger.preprocessing.run import default_spec

    manifest = load_manifest(bench["manifest"])
    assert (
        prepare(manifest, Path(bench["root"]), manifest.items, default_spec(), BodyFiles(), Path(bench["items"])) == {}
    )
    return Path(bench["items"])


def _main(*args: str) -> int:
    from vlogger.cli import main

    return main([str(a) for a in args])


@pytest.mark.slow
def test_baselines_bracket_the_range(bench, prepared):
    """Floor and ceiling on real items: the truth is in sync and moves; the still reference does neither."""
    out = bench["tmp"] / "baselines"
    args = ["benchmark", "baselines", bench["manifest"], "--out", out, "--items-dir", bench["items"]]
    assert _main(*args) == 0
    rows = {r["name"]: r for r in board.load(bench["tmp"] / "leaderboard.json")}
    assert {n: r["kind"] for n, r in rows.items()} == {
        "static": "floor",
        "warped-reference": "baseline",
        "ground-truth": "ceiling",
    }
    truth, still = rows["ground-truth"]["metrics"], rows["static"]["metrics"]
    # in sync (offset 0 or 1 frame) and more confident than a still face, whose "best" offset is wherever noise peaks
    assert truth["av_abs_offset"] <= 1 < still["av_abs_offset"] and truth["av_confidence"] > still["av_confidence"]
    # a still frame moves only by the tracker's own noise on re-encoded frames (corpus-val: 1.3 vs. 13.4)
    assert still["jitter"] < 0.2 * truth["jitter"]
    assert still["expression_diversity"] < 0.1 * truth["expression_diversity"]
    assert truth["psnr"] == 100 and rows["warped-reference"]["metrics"]["psnr"] > still["psnr"]
    # the truth scored on its own paste contour: 1 against itself, and the natural ridge real edges make there
    assert truth["border_score"] == 1 and truth["border_ridge"] > 1 and "border_ridge" not in still
    assert all(r["items"] == r["of"] == 2 and Path(r["report"]).is_file() for r in rows.values())
    assert rows["static"]["provenance"]["code_commit"]
    page = (bench["tmp"] / "leaderboard.html").read_text()
    assert "class='floor'" in page and "class='ceiling'" in page and "baselines/static/report.html" in page


@pytest.mark.slow
def test_border_scores_see_a_hard_paste_seam_and_less_of_a_feathered_one(bench, prepared, tmp_path):
    """The real items' warped reference pasted over frames whose colours drifted (what a weakly trained
    stage 2 does around the face): a hard paste leaves a seam on the contour, the feathered paste of
    stage 2 (model.paste_feather) much less of one."""
    import torch

    from vlogger.body.render import feather_mask
    from vlogger.core.paste_mask import read_paste_mask, write_paste_mask
    from vlogger.core.video import decode_mp4_bytes, encode_mp4
    from vlogger.evaluation.runner import evaluate

    item = load_manifest(bench["manifest"]).items[0].id
    warped, truth = (
        decode_mp4_bytes((prepared / k / f"{item}.mp4").read_bytes()) for k in ("warped-reference", "truth")
    )
    mask = read_paste_mask(prepared / "warped-reference" / f"{item}.mp4")
    hard = torch.from_numpy(mask[:, None]).float()
    feathered = feather_mask(hard, load_config(None, "train/video.yaml")["model"]["paste_feather"] * mask.shape[-1])
    drifted = torch.from_numpy(truth).permute(0, 3, 1, 2).float() * 0.85
    gen = tmp_path / "gen"
    for name, alpha in (("hard", hard), ("feathered", feathered)):
        pasted = alpha * torch.from_numpy(warped).permute(0, 3, 1, 2).float() + (1 - alpha) * drifted
        video = gen / f"{name}.mp4"
        gen.mkdir(exist_ok=True)
        video.write_bytes(encode_mp4(pasted.round().byte().permute(0, 2, 3, 1).numpy(), 25))
        write_paste_mask(video, mask)
        (tmp_path / "ref").mkdir(exist_ok=True)
        (tmp_path / "ref" / f"{name}.mp4").write_bytes((prepared / "truth" / f"{item}.mp4").read_bytes())
    res = evaluate(gen, tmp_path / "ref", None, load_config(None, "eval/protocol.yaml"))["per_video"]
    hard, soft = res["hard.mp4"], res["feathered.mp4"]
    assert hard["border_score"] > 1.15 and soft["border_score"] < min(1.1, hard["border_score"] - 0.2), (hard, soft)
    assert hard["border_ridge"] > soft["border_ridge"] + 0.3


@pytest.mark.slow
def test_score_names_missing_extra_and_wrong_fps_videos_and_scores_the_rest(bench, prepared, tmp_path):
    from vlogger.core.video import decode_mp4_bytes, encode_mp4

    items = prepared
    manifest = load_manifest(bench["manifest"])
    first, second = (i.id for i in manifest.items)
    videos = tmp_path / "method"
    videos.mkdir()
    # the first item: the truth itself, as another method would hand it in; the second at 30 fps
    (videos / f"{first}.mp4").write_bytes((items / "truth" / f"{first}.mp4").read_bytes())
    frames = decode_mp4_bytes((items / "truth" / f"{second}.mp4").read_bytes())
    (videos / f"{second}.mp4").write_bytes(encode_mp4(frames, 30))
    (videos / "not_an_item.mp4").write_bytes(encode_mp4(frames[:30], 25))
    out = tmp_path / "scored"
    args = ["benchmark", "score", bench["manifest"], "--videos", videos, "--name", "other", "--out", out]
    assert _main(*args, "--items-dir", bench["items"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["scored"] == 1 and res["per_video"][f"{first}.mp4"]["psnr"] == 100
    why = res["benchmark"]["not_scored"]
    assert "30.000 fps; the protocol scores 25 fps" in why[f"{second}.mp4"]
    assert "not an item of two" in why["not_an_item.mp4"] and why["(count)"] == "3 videos for the 2 items of two v1"
    (videos / f"{second}.mp4").unlink()
    assert _main(*args, "--items-dir", bench["items"]) == 0
    why = json.loads((out / "results.json").read_text())["benchmark"]["not_scored"]
    assert why[second].startswith("missing: no")
    (row,) = [r for r in board.load(tmp_path / "leaderboard.json") if r["name"] == "other"]
    assert row["kind"] == "external" and (row["items"], row["of"]) == (1, 2)


def _run(bench: dict, models: dict, out: Path, *extra: str) -> int:
    args = ["benchmark", "run", bench["manifest"], "--out", out, "--items-dir", bench["tmp"] / "model_items"]
    return _main(*args, "--motion-checkpoint", models["motion"], "--video-checkpoint", models["video"], *extra)


@pytest.fixture(scope="module")
def resumed(bench, tiny_models, tmp_path_factory) -> dict:
    """A run killed while it makes its second item, then started again: what each start generated,
    and the first item's file as the kill left it."""
    from vlogger.benchmark import run as bench_run

    real, made = bench_run.generate_item, []

    def killed_after_one(item, *args, **kw):
        if made:
            raise KeyboardInterrupt  # the job is killed while it makes the second item
        made.append(item.id)
        return real(item, *args, **kw)

    out = tmp_path_factory.mktemp("resumed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_run, "generate_item", killed_after_one)
        with pytest.raises(KeyboardInterrupt):
            _run(bench, tiny_models, out, "--name", "tiny")
    first = list(made)
    left = sorted(p.name for p in (out / "videos").iterdir())
    stat = (out / "videos" / f"{first[0]}.mp4").stat()
    made.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_run, "generate_item", lambda item, *a, **kw: made.append(item.id) or real(item, *a, **kw))
        assert _run(bench, tiny_models, out, "--name", "tiny") == 0
    return {"out": out, "first": first, "left": left, "stat": stat, "second": list(made)}


@pytest.mark.slow
def test_a_killed_run_resumes_without_generating_finished_items_again(bench, resumed):
    (done,) = resumed["first"]
    # the finished item's video and its paste mask, nothing (half-written) of the item being made
    assert resumed["left"] == sorted([f"{done}.mp4", f"{done}.paste.npz"])
    assert resumed["second"] == [i.id for i in load_manifest(bench["manifest"]).items if i.id != done]
    assert (resumed["out"] / "videos" / f"{done}.mp4").stat().st_mtime_ns == resumed["stat"].st_mtime_ns
    assert json.loads((resumed["out"] / "results.json").read_text())["videos"] == 2


@pytest.mark.slow
def test_two_shards_merged_give_the_row_of_one_run_also_scored_by_two_workers(bench, tiny_models, resumed, tmp_path):
    one, split = resumed["out"], tmp_path / "split"
    for index in ("0", "1"):
        assert _run(bench, tiny_models, split, "--name", "tiny", "--num-shards", "2", "--shard-index", index) == 0
    assert not (split / "results.json").exists()  # a shard scores nothing on its own
    merge = ["benchmark", "merge", bench["manifest"], "--out", split, "--items-dir", bench["tmp"] / "model_items"]
    assert _main(*merge, "--name", "tiny-sharded", "--workers", "2") == 0  # the one run scored in one process
    rows = {r["name"]: r for r in board.load(tmp_path / "leaderboard.json")}
    (a,) = [r for r in board.load(one.parent / "leaderboard.json") if r["name"] == "tiny"]
    b = rows["tiny-sharded"]
    for r in (a, b):
        r["provenance"]["generation"] = {k: v for k, v in r["provenance"]["generation"].items() if k == "frames"}
    assert a["metrics"] == b["metrics"] and a["provenance"] == b["provenance"] and a["items"] == b["items"]
    for video in sorted((one / "videos").iterdir()):
        assert video.read_bytes() == (split / "videos" / video.name).read_bytes()
    ckpt = a["provenance"]["checkpoints"]
    assert len(ckpt["video"]["sha256"]) == 64 and ckpt["motion"]["step"] == 5 and ckpt["video"]["step"] == 3
    assert a["provenance"]["sampling"]["seed"] == 0 and a["provenance"]["code_commit"]
    assert a["provenance"]["generation"]["frames"] == 150  # two 3-s items at 25 fps


def _row(name: str, kind: str, metrics: dict, protocol: str = "1.0") -> dict:
    results = {
        "protocol_version": protocol,
        "identity_backbone": "dlib",
        "scored": 2,
        "aggregate": metrics,
        "benchmark": {"benchmark": {"name": "b", "version": 1, "items": 2}},
    }
    return board.make_row(results, name, kind, None)


ROWS = [
    _row("ground-truth", "ceiling", {"av_confidence": 0.5, "jitter": 3.0}),
    _row("static", "floor", {"av_confidence": 0.0, "jitter": 0.0}),
    _row("model-a", "model", {"av_confidence": 0.2, "jitter": 5.0}),
    _row("model-b", "model", {"av_confidence": 0.3, "jitter": 1.0}),
    _row("model-c", "model", {"av_confidence": 0.1}),  # no jitter: always sorted last
    _row("old", "model", {"av_confidence": 0.9}, protocol="0.9"),
]
PUBLISHED = [
    {
        "method": "M",
        "paper": "P (2024)",
        "table": "Table 1",
        "benchmark": "HDTF",
        "protocol": "theirs",
        "source": "https://example.org/p.pdf",
        "values": {"fid": 20.0},
    }
]


def test_views_group_by_conditions_mark_floor_and_ceiling_and_keep_published_apart(tmp_path):
    md = board.markdown(ROWS, PUBLISHED)
    tables = md.split("### ")
    assert len(tables) == 4  # protocol 1.0, protocol 0.9 (never one table), published
    assert "av_confidence ↑" in md and "jitter ↓" in md  # arrows from the metrics' declared directions
    assert "| static (floor) | 2/2 |" in tables[1] and "| ground-truth (ceiling) |" in tables[1]
    assert "old" not in tables[1] and "run `vlogger benchmark baselines`" in tables[2]
    assert "not ranked" in tables[3] and "P (2024), Table 1" in tables[3] and "model-a" not in tables[3]
    board.add(tmp_path / "b.json", ROWS[2])
    assert len(board.add(tmp_path / "b.json", {**ROWS[2], "metrics": {}})) == 1  # same name + conditions: replaced


def test_shipped_published_numbers_load_with_their_source_and_stay_apart_from_measured_rows(tmp_path):
    """Every shipped reference number names its paper table and the URL it was read from, keeps the
    text printed in the paper (not re-rounded), and shows only in the published section."""
    published = board.load_published(REPO_ROOT / "configs" / "benchmarks" / "published.yaml")
    assert {"HDTF", "TalkingHead-1KH"} <= {p["benchmark"].split(" ")[0].rstrip(":") for p in published}
    for p in published:
        assert p["source"].startswith("https://") and p["table"] and p["verified"] is True, p["method"]
        assert all(isinstance(v, str) and float(v) >= 0 for v in p["values"].values()), p["method"]
    vlogger = [p for p in published if p["method"].startswith("VLOGGER") and "HDTF" in p["benchmark"]]
    assert vlogger and "Table 4" in vlogger[0]["table"] and vlogger[0]["values"]["lse_d"] == "8.10"
    md = board.markdown(ROWS, published)
    measured, apart = md.split("### Published numbers")
    assert "lme_mm" in apart and "not ranked" in apart and f"[source]({vlogger[0]['source']})" in apart
    assert "| VLOGGER (ours in the paper) | 18.98 | 0.621 | 5.92 | 8.10 |" in apart  # as printed: 8.10, not 8.1
    assert "VLOGGER" not in measured and "model-a" not in apart
    page = board.write_html(ROWS, tmp_path / "board.html", published).read_text()
    ranked, published_html = page.split("<h2>Published numbers</h2>")
    assert "VLOGGER" not in ranked and "table class='ranked'" not in published_html
    assert f"href='{vlogger[0]['source']}'" in published_html


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"source": None}, "needs"), ({"source": "paper.pdf"}, "http"), ({"values": {"fid": "n/a"}}, "not a number")],
)
def test_published_entry_without_a_readable_source_or_number_is_refused(tmp_path, change, reason):
    entry = {**PUBLISHED[0], **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump([entry]))
    with pytest.raises(BadInput, match=reason) as e:
        board.load_published(path)
    assert "published.yaml" in str(e.value)


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[dev]' (selenium)")
    import shutil

    driver = shutil.which("chromedriver")
    if driver is None:
        pytest.skip("no chromedriver: apt-get install -y chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,700"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver), options=options)


def test_leaderboard_page_sorts_in_a_real_browser(tmp_path):
    """Headless Chromium loads the page; clicking a header reorders the rows (again: reversed, missing
    values last). The screenshot is kept in test-artifacts/."""
    from selenium.webdriver.common.by import By

    page = board.write_html(ROWS, tmp_path / "board.html", PUBLISHED)
    browser = _chrome()
    try:
        browser.get(page.as_uri())
        table = browser.find_elements(By.CSS_SELECTOR, "table.ranked")[0]

        def names() -> list[str]:
            return [r.find_element(By.TAG_NAME, "td").text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        assert names() == ["ground-truth (ceiling)", "static (floor)", "model-a", "model-b", "model-c"]
        header = next(h for h in table.find_elements(By.TAG_NAME, "th") if h.text.startswith("jitter"))
        header.click()
        assert names() == ["static (floor)", "model-b", "ground-truth (ceiling)", "model-a", "model-c"]
        header.click()
        assert names() == ["model-a", "ground-truth (ceiling)", "model-b", "static (floor)", "model-c"]
        assert header.get_attribute("data-order") == "desc"
        floor = table.find_element(By.CSS_SELECTOR, "tr.floor")
        assert floor.value_of_css_property("background-color") != table.find_element(
            By.CSS_SELECTOR, "tr.model"
        ).value_of_css_property("background-color")
        artifacts = REPO_ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(artifacts / "leaderboard.png"))
    finally:
        browser.quit()


@pytest.mark.slow
def test_training_runs_the_benchmark_and_logs_it(bench, tiny_models, synthetic_shards, tmp_path):
    """`benchmark.manifest` + `every_steps`: the CLI's callback benchmarks the weights being trained (with
    the other stage's checkpoint) on rank 0 and logs its numbers to the run's logger."""
    import csv

    from vlogger.cli.benchmark import training_callbacks
    from vlogger.training.run import train_motion

    cfg = load_config(
        None,
        "train/motion.yaml",
        [
            f"data.shards={synthetic_shards}",
            "data.val_identities=[synth_001]",
            "model.width=32",
            "model.depth=2",
            "model.heads=2",
            "trainer.max_steps=2",
            "trainer.val_every_steps=2",
            f"logging.dir={tmp_path}",
            "logging.logger=csv",
            "logging.media_every_steps=0",
            f"benchmark.manifest={bench['manifest']}",
            "benchmark.every_steps=2",
            "benchmark.items=1",
            f"benchmark.video_checkpoint={tiny_models['video']}",
        ],
    )
    train_motion(cfg, callbacks=training_callbacks(cfg, "motion"))
    run = tmp_path / cfg["logging"]["name"]
    logged = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r.get("benchmark/scored_fraction")]
    assert [r["step"] for r in logged] == ["2"]
    assert len(list((run / "benchmark" / "step0000002" / "videos").glob("*.mp4"))) == 1
    assert json.loads((run / "benchmark" / "step0000002" / "results.json").read_text())["videos"] == 1
    with pytest.raises(ValueError, match=r"give benchmark\.video_checkpoint"):
        training_callbacks({**cfg, "benchmark": {**cfg["benchmark"], "video_checkpoint": None}}, "motion")
