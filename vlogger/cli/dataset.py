"""`vlogger dataset fetch NAME`: a standard dataset's official annotation files -> clips + identities."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_fetch(args: argparse.Namespace) -> int:
    from vlogger.core.config import CONFIG_DIR, load_config
    from vlogger.preprocessing.recipes import HOLDOUT, RECIPES
    from vlogger.preprocessing.recipes.download import Mirror, YouTube
    from vlogger.preprocessing.recipes.fetch import fetch, holdout_identities, merge

    cfg = load_config(
        args.config, "dataset/fetch.yaml", args.set + ([f"cut.size={args.size}"] if args.size is not None else [])
    )
    recipe = RECIPES[args.name](Path(args.annotations))
    if args.holdout == ["none"]:
        holdout_files = []
    else:
        holdout_files = [Path(p) for p in args.holdout] or (
            [CONFIG_DIR / HOLDOUT[args.name]] if args.name in HOLDOUT else []
        )
    holdout = holdout_identities(holdout_files)
    out = Path(args.out)
    hours = sum(e - s for s, e in (c.span(25.0) for c in recipe.clips)) / 3600  # 1KH spans are frames: at 25 fps
    print(f"{args.name}: {len(recipe.sources)} videos, {len(recipe.clips)} clips annotated ({hours:.1f} h)")
    if args.merge:
        totals = merge(out, holdout)
    else:
        timeout = cfg["download"]["timeout_seconds"]
        downloader = Mirror(args.mirror, timeout) if args.mirror else YouTube(args.resolution, timeout)
        totals = fetch(
            recipe,
            out,
            downloader,
            cfg,
            crop=args.crop == "dataset",
            workers=args.workers,
            limit=args.limit,
            num_shards=args.num_shards,
            shard_index=args.shard_index,
            retry_failed=args.retry_failed,
            holdout=holdout,
        )
        print(
            f"this job: {totals['videos']} videos ({totals['videos_todo']} to do), {totals['clips_done_before']} "
            f"clips already done, {totals['clips']} new, {totals['failed_clips']} failed"
        )
    if "clips_total" not in totals:
        print("job part written; run this command with --merge (no --shard-index) once every job has finished")
        return 0
    print(
        f"in {out}: {totals['clips_total']} clips, {totals['hours_total'] * 60:.1f} min, "
        f"{totals['identities_total']} people; {totals['failed_total']} clips failed (reasons: {out / 'failed.jsonl'})"
    )
    print(f"next: vlogger preprocess --input {out / 'clips'} --out SHARDS --config {out / 'preprocess.yaml'}")
    return 0


def add_dataset_parser(sub: argparse._SubParsersAction) -> None:
    from vlogger.preprocessing.recipes import RECIPES  # the parsers only: no video or network code

    p = sub.add_parser("dataset", help="standard datasets (HDTF, CelebV-HQ, TalkingHead-1KH) from their official files")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    q = dsub.add_parser("fetch", help="download the sources once, cut the annotated clips, write manifest + identities")
    q.add_argument("name", choices=sorted(RECIPES))
    q.add_argument(
        "--annotations",
        required=True,
        help="hdtf: the folder of HDTF_dataset/*.txt; celebvhq: celebvhq_info.json; "
        "talkinghead1kh: data_list/SPLIT_video_tubes.txt",
    )
    q.add_argument("--out", required=True, help="folder for clips/, manifest.jsonl, failed.jsonl, identities.yaml")
    q.add_argument("--workers", type=int, default=2, help="videos downloaded and cut at once (be polite)")
    q.add_argument("--limit", type=int, default=0, help="only the first K source videos (0 = all)")
    q.add_argument(
        "--resolution",
        choices=["best", "authors"],
        default="best",
        help="YouTube: the best stream, or at most the authors' resolution (HDTF states it)",
    )
    q.add_argument(
        "--mirror",
        metavar="TEMPLATE",
        help="instead of YouTube: http(s) URL or local path with {id}, e.g. http://host/hdtf/{id}.mp4",
    )
    q.add_argument(
        "--crop",
        choices=["dataset", "none"],
        default="dataset",
        help="apply the dataset's crop window, or keep the full frame (preprocessing crops)",
    )
    q.add_argument("--size", type=int, help="side of cropped clips in pixels (default 512; 0 = the window's size)")
    q.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="BENCHMARK.yaml",
        help="benchmark manifest whose people go to the test split (hdtf default: "
        "configs/benchmarks/hdtf-test.yaml; `none` for no hold-out)",
    )
    q.add_argument("--retry-failed", action="store_true", help="retry videos that failed for good last time")
    q.add_argument("--merge", action="store_true", help="only join what the jobs of an array wrote (no download)")
    q.add_argument("--num-shards", type=int, default=1, help="split the source videos into this many jobs")
    q.add_argument("--shard-index", type=int, default=0, help="which job this is (e.g. $SLURM_ARRAY_TASK_ID)")
    q.add_argument("--config", help="YAML merged over configs/dataset/fetch.yaml")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. download.retries=5")
    q.set_defaults(func=_cmd_fetch)
