"""The baselines every leaderboard shows, scored on the same items under the same protocol:
the floor `static` (the reference frame held still, with the real audio), `warped-reference`
(the true motion through the renderer, no stage 2: what the controls alone give) and the
ceiling `ground-truth` (the real segment). They need the 3D fit, no model."""

from __future__ import annotations

from pathlib import Path

from vlogger.benchmark.items import STATIC, TRUTH, WARPED, prepare
from vlogger.benchmark.manifest import Manifest, check_protocol
from vlogger.benchmark.provenance import code_commit
from vlogger.benchmark.run import RunDir, score_folder
from vlogger.generation.pipeline import BodyFiles
from vlogger.preprocessing.run import default_spec

# name -> (prepared folder, kind on the leaderboard, what it is)
BASELINES = {
    "static": (STATIC, "floor", "the reference frame held still, real audio"),
    "warped-reference": (WARPED, "baseline", "ground-truth motion through the renderer, no stage 2"),
    "ground-truth": (TRUTH, "ceiling", "the real segment"),
}


def run_baselines(
    manifest: Manifest, root: Path, out: Path, protocol: dict, items_dir: Path | None = None, workers: int = 1
) -> dict:
    """Prepare the items with today's default data spec and score the three baselines; returns
    name -> results (each in out/NAME/results.json + report.html)."""
    check_protocol(manifest, protocol)
    items_dir = items_dir or out / "items"
    failed = prepare(manifest, root, manifest.items, default_spec(), BodyFiles(), items_dir)
    bench = {"name": manifest.name, "version": manifest.version, "items": len(manifest.items)}
    results = {}
    for name, (folder, kind, what) in BASELINES.items():
        run = RunDir(out / name, items_dir, workers)
        provenance = {"benchmark": bench, "baseline": what, "kind": kind, "code_commit": code_commit()}
        results[name] = score_folder(items_dir / folder, run, protocol, provenance, failed)
    return results
