"""`vlogger benchmark ...`: manifests, runs of a checkpoint, baselines, other methods' videos,
shards merged, and the leaderboard views (vlogger.benchmark)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlogger.core.config import CONFIG_DIR
from vlogger.core.errors import UsageError

PUBLISHED = str(CONFIG_DIR / "benchmarks" / "published.yaml")

DEFAULT_ROOT = "../shared/data"


def _protocol(args: argparse.Namespace) -> dict:
    from vlogger.core.config import load_config
    from vlogger.core.tracking import filter_native_logs

    filter_native_logs()
    return load_config(args.protocol, "eval/protocol.yaml", args.set)


def _board(args: argparse.Namespace) -> Path:
    return Path(args.leaderboard) if args.leaderboard else Path(args.out).parent / "leaderboard.json"


def _add_rows(board: Path, rows: list[dict], args: argparse.Namespace) -> None:
    from vlogger.evaluation import leaderboard as lb

    for row in rows:
        entries = lb.add(board, row)
    _show(entries, board, args)


def _show(entries: list[dict], board: Path, args: argparse.Namespace) -> None:
    from vlogger.evaluation import leaderboard as lb

    published = lb.load_published(Path(args.published)) if args.published else []
    print(lb.markdown(entries, published))
    print(f"leaderboard: {board}\nhtml:        {lb.write_html(entries, board.with_suffix('.html'), published)}")
    if args.wandb:
        lb.log_wandb(entries, args.wandb, board.parent)


def training_callbacks(cfg: dict, stage: str) -> list:
    """The in-training benchmark when the training config names a manifest (`benchmark.manifest`)."""
    if not cfg["benchmark"]["manifest"] or not cfg["benchmark"]["every_steps"]:
        return []
    from vlogger.benchmark.callback import BenchmarkDuringTraining
    from vlogger.training.run import run_dir_of

    return [BenchmarkDuringTraining(cfg, stage, run_dir_of(cfg))]


def _cmd_make(args: argparse.Namespace) -> int:
    from vlogger.benchmark.manifest import make_manifest
    from vlogger.core.config import load_config
    from vlogger.core.files import write_atomic
    from vlogger.core.video import probe

    protocol = load_config(None, "eval/protocol.yaml")["version"]
    manifest, refused = make_manifest(
        Path(args.clips),
        Path(args.data_root),
        args.name or Path(args.out).stem,
        str(protocol),
        args.seconds,
        args.start,
        args.identities,
        people=args.people,
    )
    manifest.description = args.description or manifest.description
    write_atomic(Path(args.out), manifest.to_yaml())
    for name, reason in refused.items():
        print(f"refused {name}: {reason}")
    root = Path(args.data_root)
    total = sum((i.end or probe(root / i.video).duration) - i.start for i in manifest.items)
    print(f"{len(manifest.items)} items, {len(manifest.identities())} people, {total:.1f} s -> {args.out}")
    return 0


def _cmd_identities(args: argparse.Namespace) -> int:
    from vlogger.benchmark.manifest import load_manifest

    print("[" + ",".join(load_manifest(args.manifest).identities()) + "]")
    return 0


def _models(args: argparse.Namespace):
    from vlogger.zoo.models import ModelFiles, model_files

    if args.model:
        if args.motion_checkpoint or args.video_checkpoint or args.superres:
            raise UsageError(
                "--model names every checkpoint: give it without --motion/--video-checkpoint or --superres"
            )
        return model_files(args.model)
    if not (args.motion_checkpoint and args.video_checkpoint):
        raise UsageError("give --motion-checkpoint and --video-checkpoint, or --model NAME from the zoo")
    return ModelFiles(Path(args.motion_checkpoint), Path(args.video_checkpoint), tuple(map(Path, args.superres)))


def _run_dir(args: argparse.Namespace):
    from vlogger.benchmark.run import RunDir

    return RunDir(Path(args.out), Path(args.items_dir) if args.items_dir else None, args.workers)


def _cmd_run(args: argparse.Namespace) -> int:
    from vlogger.benchmark.manifest import load_manifest
    from vlogger.benchmark.run import run_shard
    from vlogger.generation.pipeline import Sampling

    manifest, protocol = load_manifest(args.manifest), _protocol(args)
    sampling = Sampling(seed=args.seed, steps=args.steps, guidance=args.guidance, device=args.device)
    root = manifest.root(args.data_root)
    failed = run_shard(
        manifest, root, _run_dir(args), _models(args), sampling, protocol, args.num_shards, args.shard_index
    )
    for item_id, reason in failed.items():
        print(f"item {item_id} not generated: {reason}")
    if args.num_shards > 1:
        print(
            f"shard {args.shard_index} of {args.num_shards} done; `vlogger benchmark merge {args.manifest} --out "
            f"{args.out}` once every shard has finished"
        )
        return 0
    return _finish(manifest, protocol, args)


def _finish(manifest, protocol: dict, args: argparse.Namespace) -> int:
    from vlogger.benchmark.run import merge
    from vlogger.evaluation import leaderboard as lb

    out = Path(args.out)
    results = merge(manifest, _run_dir(args), protocol)
    _print_results(results, out)
    name = args.name or out.name
    _add_rows(_board(args), [lb.make_row(results, name, "model", out / "report.html")], args)
    return 0


def _print_results(results: dict, out: Path) -> None:
    for k, v in results["aggregate"].items():
        print(f"{k:24s} {v:.4g}")
    for k, v in results["skipped_metrics"].items():
        print(f"skipped {k}: {v}")
    for k, v in results["benchmark"]["not_scored"].items():
        print(f"not scored {k}: {v}")
    for u in results["unscorable"]:
        print(f"unscorable {u['video']}: {u['reason']}")
    print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")


def _cmd_merge(args: argparse.Namespace) -> int:
    from vlogger.benchmark.manifest import load_manifest

    return _finish(load_manifest(args.manifest), _protocol(args), args)


def _cmd_baselines(args: argparse.Namespace) -> int:
    from vlogger.benchmark.baselines import BASELINES, run_baselines
    from vlogger.benchmark.manifest import load_manifest
    from vlogger.evaluation import leaderboard as lb

    manifest, out = load_manifest(args.manifest), Path(args.out)
    items = Path(args.items_dir) if args.items_dir else None
    results = run_baselines(manifest, manifest.root(args.data_root), out, _protocol(args), items, args.workers)
    rows = [lb.make_row(r, name, BASELINES[name][1], out / name / "report.html") for name, r in results.items()]
    _add_rows(_board(args), rows, args)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from vlogger.benchmark.items import prepare
    from vlogger.benchmark.manifest import check_protocol, load_manifest
    from vlogger.benchmark.provenance import code_commit
    from vlogger.benchmark.run import VIDEOS, score_folder
    from vlogger.benchmark.score import check_videos
    from vlogger.evaluation import leaderboard as lb
    from vlogger.preprocessing.run import default_spec

    manifest, protocol, run = load_manifest(args.manifest), _protocol(args), _run_dir(args)
    check_protocol(manifest, protocol)
    usable, problems = check_videos(manifest, Path(args.videos), protocol["video"]["fps"], manifest.size)
    for name, reason in problems.items():
        print(f"{name}: {reason}")
    if not usable:
        raise UsageError(f"{args.videos}: no video can be scored on {manifest.name} (reasons above)")
    items = [i for i in manifest.items if i.id in usable]
    failed = prepare(manifest, manifest.root(args.data_root), items, default_spec(), None, run.items_dir)
    folder = run.out / VIDEOS
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.mp4"):
        old.unlink()
    for item_id, path in usable.items():
        if item_id not in failed:
            (folder / f"{item_id}.mp4").symlink_to(path.resolve())
    bench = {"name": manifest.name, "version": manifest.version, "items": len(manifest.items)}
    provenance = {"benchmark": bench, "videos": str(Path(args.videos).resolve()), "code_commit": code_commit()}
    results = score_folder(folder, run, protocol, provenance, {**problems, **failed})
    _print_results(results, run.out)
    _add_rows(_board(args), [lb.make_row(results, args.name, "external", run.out / "report.html")], args)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from vlogger.evaluation import leaderboard as lb

    board = Path(args.leaderboard)
    if args.action == "add":
        if not args.result or not args.name:
            raise UsageError("leaderboard add needs RESULT.json and --name")
        result = Path(args.result)
        lb.add(board, lb.make_row(lb.read_result(result), args.name, "model", result.parent / "report.html"))
    _show(lb.load(board), board, args)
    return 0


def _common(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    p.add_argument("manifest", help="benchmark manifest (configs/benchmarks/*.yaml)")
    p.add_argument("--out", required=out_required, help="folder for videos, results.json and report.html")
    p.add_argument("--data-root", help="root the manifest's paths are relative to (default: the manifest's data_root)")
    p.add_argument("--items-dir", help="prepared items to share between runs of one data spec (default OUT/items)")
    p.add_argument("--protocol", help="YAML merged over configs/eval/protocol.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="protocol override")
    p.add_argument("--workers", type=int, default=1, help="processes scoring the videos (same numbers as one)")
    _views(p, default=None)


def _views(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--leaderboard", default=default, help="leaderboard file (default: leaderboard.json beside OUT)")
    p.add_argument("--published", default=PUBLISHED, help="published reference numbers shown apart ('' for none)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log the board as a W&B table (offline by default)")


def add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="fixed test sets: run a checkpoint, baselines, other videos, leaderboard")
    bsub = p.add_subparsers(dest="benchmark_command", required=True)

    q = bsub.add_parser("make", help="a manifest with one item per clip of a folder (deterministic)")
    q.add_argument("--clips", required=True, help="folder of clips (under the data root)")
    q.add_argument("--out", required=True, help="manifest to write (.yaml)")
    q.add_argument("--name", help="benchmark name (default: the manifest's file name)")
    q.add_argument("--description", help="what the benchmark is for, in words")
    q.add_argument("--data-root", default=DEFAULT_ROOT, help="item paths are stored relative to it")
    q.add_argument("--seconds", type=float, help="segment length (default: to each clip's end)")
    q.add_argument("--start", type=float, default=1.0, help="segment start; the reference is the first frame")
    q.add_argument("--identities", help="video -> person file (configs/identities/corpus.yaml)")
    q.add_argument("--people", action="append", help="only these people's clips (repeat; all of a person's files)")
    q.set_defaults(func=_cmd_make)

    q = bsub.add_parser("identities", help="the manifest's people, for preprocess --set shards.test_identities=...")
    q.add_argument("manifest")
    q.set_defaults(func=_cmd_identities)

    q = bsub.add_parser("run", help="generate every item with a checkpoint, score, add a leaderboard row")
    _common(q)
    q.add_argument("--motion-checkpoint", help="stage-1 checkpoint")
    q.add_argument("--video-checkpoint", help="stage-2 checkpoint")
    q.add_argument("--superres", action="append", default=[], help="super-resolution checkpoint(s), in order")
    q.add_argument("--model", help="a model of the zoo (`vlogger zoo list`) instead of the checkpoint options")
    q.add_argument("--name", help="leaderboard row name (default: the OUT folder's name)")
    q.add_argument("--steps", type=int, help="stage-2 sampler steps (default: the checkpoint's)")
    q.add_argument("--guidance", type=float, help="stage-2 guidance (default: the checkpoint's)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--num-shards", type=int, default=1, help="split the items into this many jobs")
    q.add_argument("--shard-index", type=int, default=0, help="which job this is (e.g. $SLURM_ARRAY_TASK_ID)")
    q.set_defaults(func=_cmd_run)

    q = bsub.add_parser("merge", help="score a sharded run once every shard has finished")
    _common(q)
    q.add_argument("--name", help="leaderboard row name (default: the OUT folder's name)")
    q.set_defaults(func=_cmd_merge)

    q = bsub.add_parser("baselines", help="score static (floor), warped-reference and ground-truth (ceiling)")
    _common(q)
    q.set_defaults(func=_cmd_baselines)

    q = bsub.add_parser("score", help="score videos made elsewhere, named ITEM_ID.mp4")
    _common(q)
    q.add_argument("--videos", required=True, help="folder of ITEM_ID.mp4 videos")
    q.add_argument("--name", required=True, help="leaderboard row name (the method)")
    q.set_defaults(func=_cmd_score)


def add_leaderboard_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="add a `vlogger evaluate` result to a leaderboard, or show one")
    p.add_argument("action", choices=["add", "show"])
    p.add_argument("result", nargs="?", help="results.json written by `vlogger evaluate` (for add)")
    p.add_argument("--name", help="checkpoint / method name (for add)")
    _views(p, default="leaderboard.json")
    p.set_defaults(func=_cmd_leaderboard)
