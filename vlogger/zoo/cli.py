"""`vlogger zoo ...`: list, fetch, verify and register weights from the shell (`add-checkpoint`, which
converts a training checkpoint, is added by `vlogger.cli.zoo`)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from vlogger.zoo.fetch import add_local, cached, fetch, resolve
from vlogger.zoo.models import verify
from vlogger.zoo.registry import ZooError, load_registry

Handler = Callable[[argparse.Namespace], int]


def _reports_errors(handler: Handler) -> Handler:
    """Turn a ZooError into `error: ...` on stderr and exit code 2, like the other sub-commands."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ZooError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run


@_reports_errors
def _cmd_list(args: argparse.Namespace) -> int:
    registry = load_registry()
    rows = [("name", "kind", "here", "size", "licence", "purpose")]
    for name, entry in sorted(registry.items()):
        files = [entry] if entry.kind != "model" else [registry[p] for p in _parts(entry) if p in registry]
        sizes = [f.size for f in files]
        size = "?" if not files or None in sizes else f"{sum(sizes) / 1e6:.1f} MB"
        here = "yes" if files and all(cached(f) for f in files) else "no"
        rows.append((name, entry.kind, here, size, entry.licence, entry.purpose))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _parts(entry) -> list[str]:
    return [p for p in (entry.parts["motion"], entry.parts["video"], *entry.parts["superres"]) if p]


@_reports_errors
def _cmd_verify(args: argparse.Namespace) -> int:
    """Every file checked in full against the registry's sha256; exit 2 when any is not as listed."""
    status = verify(args.name or None)
    for name, why in status.items():
        print(f"{name}: {why}")
    return 0 if all(why == "ok" for why in status.values()) else 2


@_reports_errors
def _cmd_fetch(args: argparse.Namespace) -> int:
    print(fetch(args.name, force=args.force))
    return 0


@_reports_errors
def _cmd_add_local(args: argparse.Namespace) -> int:
    print(add_local(args.name, args.path))
    return 0


@_reports_errors
def _cmd_path(args: argparse.Namespace) -> int:
    print(resolve(args.name))
    return 0


def add_zoo_parser(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `zoo` and its sub-commands to the main `vlogger` parser; each sets `func` to an int-returning handler.
    Returns the sub-commands, for the ones a higher layer adds (`add-checkpoint`)."""
    zoo = subparsers.add_parser(
        "zoo", help="evaluator weights and our checkpoints: list, fetch, verify, add-local, path"
    )
    sub = zoo.add_subparsers(dest="zoo_command", required=True)

    p = sub.add_parser("list", help="every known file and model: here or not, size, licence, purpose")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("verify", help="check files against the registry's sha256 (default: every file that is here)")
    p.add_argument("name", nargs="*", help="entries or models to check")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("fetch", help="download from the official URL, verify sha256, cache")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="download again even if a verified copy is cached")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("add-local", help="cache a file you already have (checked against the registry's sha256)")
    p.add_argument("name")
    p.add_argument("path")
    p.set_defaults(func=_cmd_add_local)

    p = sub.add_parser("path", help="print the cached file's path (error if it is not cached)")
    p.add_argument("name")
    p.set_defaults(func=_cmd_path)
    return sub
