"""The `vlogger` command: one entry point with sub-commands.

The top layer (docs/architecture.md). Each command imports what it runs inside its function, so
`vlogger --help` or `vlogger zoo list` start without loading torch, Lightning or mediapipe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import BinaryIO

from vlogger.core.errors import UsageError, UserError
from vlogger.zoo.registry import ZooError


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from vlogger.core.config import load_config
    from vlogger.preprocessing.run import preprocess

    sets = args.set + ([f"shards.identities={args.identities}"] if args.identities else [])
    cfg = load_config(args.config, "preprocess/default.yaml", sets)
    stats = preprocess(Path(args.input), Path(args.out), cfg, args.workers, args.num_shards, args.shard_index)
    _print_summary(Path(args.out), stats)
    return 0


def _print_summary(out: Path, stats: dict) -> None:
    print(
        f"inputs {stats['inputs']} (already done {stats['skipped_done']}), new clips {stats['clips']}, "
        f"rejections {stats['rejected']}, frames {stats['frames']}"
    )
    index = stats.get("index")
    if index:
        splits = ", ".join(f"{k}: {v['clips']} clips / {len(v['identities'])} ids" for k, v in index["splits"].items())
        print(
            f"shards in {out}: {index['clips']} clips, {index['frames']} frames, {index['hours'] * 60:.2f} min, "
            f"{index['identities']} identities ({splits})"
        )
        print(f"index: {out / 'index.json'}   rejected: {out / 'rejected.jsonl'}")
        for line in (out / "rejected.jsonl").read_text().splitlines():
            r = json.loads(line)
            print(f"  rejected {r['file']}" + (f" clip {r['clip']}" if "clip" in r else "") + f": {r['reason']}")
    else:
        print(f"job part written; run `vlogger merge-index {out}` once every job has finished")


def _cmd_merge_index(args: argparse.Namespace) -> int:
    from vlogger.preprocessing.shards import merge_index

    index = merge_index(Path(args.out))
    print(f"{index['clips']} clips in {len(index['shards'])} shards, {index['identities']} identities")
    return 0


def _cmd_make_sample(args: argparse.Namespace) -> int:
    from vlogger.preprocessing.sample import make_sample

    paths = make_sample(Path(args.out), n_clips=args.clips, seconds=args.seconds, seed=args.seed)
    for p in paths:
        print(p)
    return 0


def _cmd_contact_sheet(args: argparse.Namespace) -> int:
    from vlogger.datasets.contact_sheet import contact_sheet

    urls = [u for split in ("train", "val") for u in _maybe_urls(args.shards, split)]
    print(contact_sheet(urls, Path(args.out)))
    return 0


def _maybe_urls(root: str, split: str) -> list[str]:
    from vlogger.datasets.shards import shard_urls

    try:
        return shard_urls(root, split)
    except FileNotFoundError:
        return []


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vlogger.core.config import load_config
    from vlogger.core.tracking import filter_native_logs
    from vlogger.evaluation.runner import evaluate, write_results

    filter_native_logs()

    protocol = load_config(args.protocol, "eval/protocol.yaml", args.set)
    ref = Path(args.reference) if args.reference else None
    audio = Path(args.audio) if args.audio else None
    out = Path(args.out)
    results = evaluate(Path(args.generated), ref, audio, protocol, out / "frames", args.workers)
    path = write_results(results, out)
    for k, v in results["aggregate"].items():
        print(f"{k:24s} {v:.4g}")
    for k, v in results["skipped_metrics"].items():
        print(f"skipped {k}: {v}")
    for u in results["unscorable"]:
        print(f"unscorable {u['video']}: {u['reason']}")
    print(f"results: {path}\nreport:  {path.parent / 'report.html'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vlogger.cli.benchmark import training_callbacks
    from vlogger.core.config import load_config
    from vlogger.training.run import TRAINERS

    cfg = load_config(args.config, f"train/{args.stage}.yaml", args.set)
    summary = TRAINERS[args.stage](cfg, args.resume, training_callbacks(cfg, args.stage))
    for k, v in summary.items():
        print(f"{k:18s} {v}")
    return 0


def _cmd_generate_motion(args: argparse.Namespace) -> int:
    from vlogger.generation.pipeline import Sampling, generate_motion, write_motion

    sampling = Sampling(
        seed=args.seed, steps=args.steps, guidance=args.guidance, sampler=args.sampler, device=args.device
    )
    result = generate_motion(args.image, args.audio, args.checkpoint, sampling, body_model_path=args.body_model_path)
    paths = write_motion(result, Path(args.out), args.size)
    print(f"{len(result.motion)} frames ({len(result.motion) / result.fps:.1f} s) of motion")
    for name, path in paths.items():
        print(f"{name:6s} {path}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.stream == "-":  # stdout carries the frames: everything said goes to stderr
        frames_out = sys.stdout.buffer
        with contextlib.redirect_stdout(sys.stderr):
            return _generate(args, _RawFrames(frames_out))
    return _generate(args, _RawFrames(args.stream or None))


def _generate(args: argparse.Namespace, raw: _RawFrames) -> int:
    from vlogger.generation.pipeline import Sampling, generate_motion, generate_video, write_motion

    started = time.perf_counter()
    out = Path(args.out)
    if args.model:
        _use_model(args)
    elif not args.video_checkpoint:
        raise UsageError("give --video-checkpoint (and --motion-checkpoint), or --model NAME from the zoo")
    for path in [args.video_checkpoint, *args.superres, *[args.motion_checkpoint] * (not args.motion_from)]:
        if path and not Path(path).is_file():  # before stage 1 runs, not after
            raise FileNotFoundError(f"{path}: no such checkpoint")
    if args.motion_from:
        from vlogger.generation.reconstruct import motion_from_video, write_references

        rec = motion_from_video(
            args.motion_from,
            args.video_checkpoint,
            args.image,
            args.audio,
            args.reference_frame,
            args.start,
            body_model_path=args.body_model_path,
        )
        result = rec.motion
    else:
        if not (args.image and args.audio and args.motion_checkpoint):
            raise UsageError("give --image, --audio and --motion-checkpoint (or --motion-from VIDEO)")
        sampling = Sampling(seed=args.seed, device=args.device)
        result = generate_motion(
            args.image, args.audio, args.motion_checkpoint, sampling, body_model_path=args.body_model_path
        )
    motion_done = time.perf_counter()
    sampling = Sampling(
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        noise_correlation=args.noise_correlation,
        device=args.device,
    )
    with raw:
        video = generate_video(
            result,
            args.video_checkpoint,
            out,
            sampling,
            superres=args.superres,
            size=args.size,
            stream=args.stream is not None,
            on_frames=raw.write,
        )
    write_motion(result, out, len(video[0]))
    done = time.perf_counter() - started
    print(f"{len(video)} frames ({len(video) / result.fps:.1f} s) at {len(video[0])} px in {done:.1f} s")
    print(f"first frame after {raw.first - started:.1f} s ({raw.first - motion_done:.1f} s after stage 1)")
    print(f"video    {out / 'video.mp4'}\ncontrols {out / 'controls.mp4'}\nmotion   {out / 'motion.npz'}")
    if args.motion_from:
        for name, path in write_references(rec, out, len(video[0])).items():
            print(f"{name:8s} {path}")
    return 0


def _use_model(args: argparse.Namespace) -> None:
    """--model NAME: the zoo model's files (each verified against its sha256) as the checkpoint options."""
    from vlogger.zoo.models import model_files

    if args.motion_checkpoint or args.video_checkpoint or args.superres:
        raise UsageError("--model names every checkpoint: give it without --motion/--video-checkpoint or --superres")
    files = model_files(args.model)
    args.motion_checkpoint, args.video_checkpoint, args.superres = files.motion, files.video, list(files.superres)


class _RawFrames:
    """`vlogger generate --stream TARGET`: every frame as raw rgb24 bytes (S x S x 3, 25 a
    second) to a binary stream (stdout) or a file or named pipe, as soon as it is made; keeps
    the time the first frame came (with no target too, for the report)."""

    def __init__(self, target: str | BinaryIO | None):
        self.target, self.file, self.first = target, None, None

    def __enter__(self) -> _RawFrames:
        if isinstance(self.target, str):
            self.file = open(self.target, "wb")  # closed in __exit__
        else:
            self.file = self.target
        return self

    def write(self, frames) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        if self.file is not None:
            self.file.write(frames.tobytes())
            self.file.flush()

    def __exit__(self, *exc) -> None:
        if isinstance(self.target, str):
            self.file.close()


def _photo_and_speech_args(p: argparse.ArgumentParser, out: str, out_help: str, required: bool = True) -> None:
    """The inputs and output options both generation commands take."""
    p.add_argument("--image", required=required, help="reference photo of one person (or a video: its first frame)")
    p.add_argument("--audio", required=required, help="speech recording (any length, any rate; video files too)")
    p.add_argument("--out", default=out, help=out_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="sampler steps (default: each checkpoint's config)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--body-model-path", metavar="DIR", help="the SMPL-X folder, for models trained on SMPL-X fits")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlogger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("preprocess", help="raw talking videos -> tracked, cropped clips -> WebDataset shards")
    p.add_argument("--input", required=True, help="folder searched recursively for videos (ingest.extensions)")
    p.add_argument("--out", required=True, help="output folder for shards, index.json, rejected.jsonl")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--num-shards", type=int, default=1, help="split the input list into this many jobs")
    p.add_argument("--shard-index", type=int, default=0, help="which job this is (e.g. $SLURM_ARRAY_TASK_ID)")
    p.add_argument(
        "--identities", help="YAML/JSON: video (path, name or stem) -> person, e.g. configs/identities/corpus.yaml"
    )
    p.add_argument("--config", help="YAML merged over configs/preprocess/default.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. crop.size=512")
    p.set_defaults(func=_cmd_preprocess)

    p = sub.add_parser("merge-index", help="join the manifests of all preprocessing jobs into index.json")
    p.add_argument("out")
    p.set_defaults(func=_cmd_merge_index)

    p = sub.add_parser("contact-sheet", help="PNG grid of every clip in the shards with landmarks drawn")
    p.add_argument("shards", help="folder written by `vlogger preprocess`")
    p.add_argument("--out", default="contact_sheet.png")
    p.set_defaults(func=_cmd_contact_sheet)

    p = sub.add_parser("evaluate", help="score a folder of generated videos under the pinned protocol")
    p.add_argument("--generated", required=True, help="folder of generated videos")
    p.add_argument("--reference", help="folder of ground-truth videos or reference images, matched by name")
    p.add_argument("--audio", help="folder of driving audio, matched by name (default: the video's own track)")
    p.add_argument("--out", required=True, help="folder for results.json and report.html")
    p.add_argument("--protocol", help="YAML merged over configs/eval/protocol.yaml (bump its version!)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workers", type=int, default=1, help="videos scored in parallel processes (same numbers as 1)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train", help="train a stage with PyTorch Lightning (configs/train/STAGE_*.yaml)")
    p.add_argument(
        "stage",
        choices=["motion", "video"],
        help="motion: stage 1 (audio -> motion); video: stage 2 (controls -> frames)",
    )
    p.add_argument("--config", action="append", default=[], help="YAML merged over configs/train/STAGE.yaml, in order")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. data.shards=DIR")
    p.add_argument("--resume", help="checkpoint to continue from, or `auto` for the run's last.ckpt")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("generate-motion", help="stage 1 only: photo + speech -> 3D motion and a control video")
    _photo_and_speech_args(p, "out/motion", "folder for motion.npz and controls.mp4")
    p.add_argument("--size", type=int, default=256, help="render resolution of controls.mp4")
    p.add_argument("--checkpoint", required=True, help="stage-1 checkpoint (runs/NAME/checkpoints/*.ckpt)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale on the audio")
    p.add_argument("--sampler", choices=["ddpm", "ddim", "dpm"])
    p.set_defaults(func=_cmd_generate_motion)

    p = sub.add_parser("generate", help="photo + speech -> talking video (stage 1, controls, stage 2)")
    _photo_and_speech_args(p, "out/generate", "folder for video.mp4, controls.mp4, motion.npz", required=False)
    p.add_argument("--motion-checkpoint", help="stage-1 checkpoint (not with --motion-from)")
    p.add_argument("--video-checkpoint", help="stage-2 checkpoint")
    p.add_argument(
        "--model", help="a model of the zoo (`vlogger zoo list`): its stage-1, stage-2 and super-resolution files"
    )
    p.add_argument("--superres", action="append", default=[], help="super-resolution checkpoint(s), applied in order")
    p.add_argument("--size", type=int, help="output side in pixels (default: the last model's size)")
    p.add_argument("--guidance", type=float, help="stage-2 guidance on reference + controls")
    p.add_argument(
        "--noise-correlation",
        type=float,
        help="share (0-1) of the starting noise common to all frames: less flicker (default: the checkpoint's)",
    )
    p.add_argument(
        "--motion-from",
        metavar="VIDEO",
        help="reconstruction: drive with this clip's tracked motion instead of stage 1 (its frame is the "
        "reference unless --image; writes ground_truth.mp4 and the warped_reference.mp4 baseline)",
    )
    p.add_argument("--reference-frame", type=int, default=0, help="with --motion-from: the clip's reference frame")
    p.add_argument("--start", type=float, default=0.0, help="with --motion-from: first second of the clip to drive")
    p.add_argument(
        "--stream",
        nargs="?",
        const="",
        metavar="TARGET",
        help="write video.mp4 as a fragmented mp4 while the frames are made; with TARGET (`-` = stdout, "
        "or a file / named pipe) also every frame as raw rgb24 bytes as soon as it is made",
    )
    p.set_defaults(func=_cmd_generate)

    from vlogger.cli.zoo import add_checkpoint_parser
    from vlogger.zoo.cli import add_zoo_parser

    add_checkpoint_parser(add_zoo_parser(sub))

    from vlogger.cli.body import add_body_parser, add_render_parser

    add_body_parser(sub)
    add_render_parser(sub)

    from vlogger.cli.dataset import add_dataset_parser

    add_dataset_parser(sub)

    from vlogger.cli.benchmark import add_benchmark_parser, add_leaderboard_parser

    add_benchmark_parser(sub)
    add_leaderboard_parser(sub)

    p = sub.add_parser("make-sample", help="write the small synthetic talking-face sample used by the demo")
    p.add_argument("--out", default="data/sample")
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_make_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        UserError,
        ZooError,
        FileNotFoundError,
    ) as e:  # what a user can fix: said, not traced; the rest keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
