"""`vlogger zoo add-checkpoint`: a training run's checkpoint into the zoo as fp16 safetensors with its
model card and registry entries (training converts, the zoo stores and verifies: the CLI joins them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlogger.core.errors import UsageError

LICENCE = "Apache-2.0 (vlogger code and weights); the training videos' own terms apply: see the model card"


def _cmd_add_checkpoint(args: argparse.Namespace) -> int:
    from vlogger.training.export import FILE_FORMAT, checkpoint_of, export_checkpoint, model_card
    from vlogger.zoo.models import model_parts, store_checkpoint, write_card

    ckpt = checkpoint_of(Path(args.run))
    exported = export_checkpoint(ckpt, args.card_notes, Path(args.benchmark) if args.benchmark else None)
    if args.stage and args.stage != exported.stage:
        raise UsageError(f"{ckpt}: a {exported.stage} checkpoint, not --stage {args.stage}")
    purpose = args.purpose or f"vlogger cascade {args.name}: photo + speech -> talking video"
    path = store_checkpoint(
        args.name,
        exported.stage,
        exported.data,
        licence=args.licence,
        purpose=purpose,
        file_format=FILE_FORMAT,
        ship=args.ship,
    )
    card = write_card(args.name, model_card(args.name, model_parts(args.name, args.ship)), args.ship)
    print(f"{exported.stage:8s} {path} ({len(exported.data) / 1e6:.1f} MB, step {exported.card['step']})")
    print(f"card     {card}\nentries  {args.name}.{exported.stage}, {args.name} (`vlogger zoo list`)")
    return 0


def add_checkpoint_parser(zoo: argparse._SubParsersAction) -> None:
    """`add-checkpoint` under `vlogger zoo` (the zoo layer's own sub-commands are `vlogger.zoo.cli`'s)."""
    p = zoo.add_parser("add-checkpoint", help="a training checkpoint -> fp16 safetensors + model card + registry entry")
    p.add_argument("run", help="run folder of `vlogger train` (its checkpoints/last.ckpt) or a .ckpt file")
    p.add_argument("--name", required=True, help="the model's name; each stage is added under it (NAME.STAGE)")
    p.add_argument("--stage", choices=["motion", "video", "superres"], help="check that the checkpoint is this stage")
    p.add_argument("--card-notes", help="text for the model card (what the run's files do not say)")
    p.add_argument("--benchmark", metavar="RESULTS.json", help="results of `vlogger benchmark run` for the card")
    p.add_argument("--licence", default=LICENCE)
    p.add_argument("--purpose", help="one line for `vlogger zoo list`")
    p.add_argument(
        "--ship",
        action="store_true",
        help="into the package (models/ beside the registry in use, <= 40 MB in all) instead of your own zoo",
    )
    p.set_defaults(func=_cmd_add_checkpoint)
