"""`vlogger body ...`: fit the expression basis and the motion statistics from shards."""

from __future__ import annotations

import argparse
import json

import numpy as np


def _cmd_fit_basis(args: argparse.Namespace) -> int:
    from vlogger.body.facemesh import fit_basis, jaw_report
    from vlogger.body.topology import facemesh_topology
    from vlogger.datasets.shards import all_shard_urls, clip_arrays

    clips, keys = [], []
    for root in args.shards:
        for c in clip_arrays(all_shard_urls(root), ["lmk.npy"]):
            if c["json"]["landmark_format"] != "mediapipe478":
                raise SystemExit(f"{c['key']}: landmark format {c['json']['landmark_format']} (need mediapipe478)")
            if not any(x in c["key"] for x in args.exclude):
                clips.append(c["lmk.npy"])
                keys.append(c["key"])
    basis = fit_basis(clips, args.components)
    topo = facemesh_topology()
    basis.faces, basis.labels = topo.faces, topo.labels
    basis.info.update(keys=keys, shards=[str(s) for s in args.shards])
    basis.save(args.out)
    allf = np.concatenate(clips)
    report = jaw_report(allf, basis)
    print(f"basis {basis.basis_id}: {basis.n_components} components from {len(clips)} clips, {len(allf)} frames")
    print(
        "explained variance: "
        + " ".join(f"{v:.3f}" for v in basis.explained[:8])
        + f" (sum {basis.explained.sum():.3f})"
    )
    print(f"mouth opening vs component coefficients, correlation: {json.dumps(report)}")
    print(args.out)
    return 0


def _cmd_motion_stats(args: argparse.Namespace) -> int:
    from vlogger.body.motion import motion_stats
    from vlogger.datasets.shards import clip_arrays, shard_urls

    params = [c["params.npz"] for c in clip_arrays(shard_urls(args.shards, "train"), ["params.npz"])]
    stats = motion_stats(params, args.expression)
    stats.save(args.out)
    print(f"{stats.info['vectors']} motion vectors from {stats.info['clips']} clips -> {args.out}")
    return 0


def add_body_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("body", help="3D body model: fit the face-mesh expression basis, motion statistics")
    bsub = p.add_subparsers(dest="body_command", required=True)

    q = bsub.add_parser("fit-basis", help="PCA expression basis of the face-mesh model from shards' landmarks")
    q.add_argument("shards", nargs="+", help="folders written by `vlogger preprocess`")
    q.add_argument("--out", required=True, help="basis file to write (.npz)")
    q.add_argument("--components", type=int, default=32)
    q.add_argument("--exclude", action="append", default=[], help="skip clips whose key contains this")
    q.set_defaults(func=_cmd_fit_basis)

    q = bsub.add_parser("motion-stats", help="normalisation statistics of the stage-1 motion vector")
    q.add_argument("shards", help="folder of shards with params.npz members")
    q.add_argument("--out", required=True, help="statistics file to write (.npz)")
    q.add_argument("--expression", type=int, default=32, help="expression coefficients in the motion vector")
    q.set_defaults(func=_cmd_motion_stats)
