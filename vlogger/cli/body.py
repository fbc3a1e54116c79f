"""`vlogger body ...`: fit the expression basis from shards; `vlogger render`: control videos of shards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def _cmd_fit_hand_basis(args: argparse.Namespace) -> int:
    from vlogger.body.hand_basis import fit_hand_basis
    from vlogger.body.hands import hand_pose
    from vlogger.datasets.shards import all_shard_urls, clip_arrays

    clips, keys = [], []
    for root in args.shards:
        for c in clip_arrays(all_shard_urls(root), ["params.npz"]):
            p = c["params.npz"]
            if "hands" not in p:
                raise SystemExit(f"{c['key']}: params without hands (preprocess with tracking.hand_stride > 0)")
            clips.append((p["hands"], p["hand_visible"]))
            keys.append(c["key"])
    basis = fit_hand_basis(clips, args.components)
    basis.info.update(keys=keys, shards=[str(s) for s in args.shards])
    basis.save(args.out)
    err = []
    for h, v in clips:
        pose, full = hand_pose(h, v), v.min(-1) > 0
        err.append(np.linalg.norm(basis.decode(basis.encode(pose))[full] - pose[full], axis=-1).ravel())
    shares = " ".join(f"{e:.3f}" for e in basis.explained[:8])
    n = basis.info["hands"]
    print(f"hand basis {basis.basis_id}: {len(basis.stddev)} components, {n} hands, {len(clips)} clips")
    print(f"explained variance: {shares} (sum {basis.explained.sum():.3f})")
    print(f"reconstruction error: {np.concatenate(err).mean():.4f} palm lengths per point (on the fitted hands)")
    print(args.out)
    return 0


def add_body_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("body", help="3D body model: fit the face-mesh expression basis")
    bsub = p.add_subparsers(dest="body_command", required=True)

    q = bsub.add_parser("fit-basis", help="PCA expression basis of the face-mesh model from shards' landmarks")
    q.add_argument("shards", nargs="+", help="folders written by `vlogger preprocess`")
    q.add_argument("--out", required=True, help="basis file to write (.npz)")
    q.add_argument("--components", type=int, default=32)
    q.add_argument("--exclude", action="append", default=[], help="skip clips whose key contains this")
    q.set_defaults(func=_cmd_fit_basis)

    q = bsub.add_parser("fit-hand-basis", help="PCA hand-pose basis from shards' hand params (both hands, mirrored)")
    q.add_argument("shards", nargs="+", help="folders written by `vlogger preprocess` with hands")
    q.add_argument("--out", required=True, help="basis file to write (.npz)")
    q.add_argument("--components", type=int, default=12)
    q.set_defaults(func=_cmd_fit_hand_basis)


def add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="side-by-side video of shard clips: frame | semantic | coords | warped")
    p.add_argument("shards", help="folder written by `vlogger preprocess` (with params.npz)")
    p.add_argument("--out", default="data/render", help="folder for KEY.mp4 and controls_sheet.png")
    p.add_argument("--key", action="append", default=[], help="render clips whose key contains this")
    p.add_argument("--limit", type=int, default=0, help="stop after this many clips (0 = all)")
    p.add_argument("--size", type=int, default=256, help="render resolution")
    p.add_argument("--ref-index", type=int, default=0, help="frame whose colours are warped to the others")
    p.add_argument("--basis", help="face-mesh basis file (default: shipped)")
    p.add_argument("--model-path", help="SMPL-X folder, for shards fitted with body_model=smplx")
    p.set_defaults(func=_cmd_render)


def _cmd_render(args: argparse.Namespace) -> int:
    """Side-by-side control videos (and a contact sheet) of shard clips."""
    import webdataset as wds

    from vlogger.body.control_video import render_shard_clip
    from vlogger.body.fitting import load_body
    from vlogger.body.params import from_npz
    from vlogger.core.audio import from_flac
    from vlogger.core.errors import ContractError
    from vlogger.core.spec import DataSpec
    from vlogger.core.video import encode_mp4
    from vlogger.datasets.shards import all_shard_urls

    parts = DataSpec.of_shards(args.shards).parts  # hands and iris drawn where the shards carry them
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, done = [], 0
    for sample in wds.WebDataset(all_shard_urls(args.shards), shardshuffle=False, empty_check=False):
        key = sample["__key__"]
        if args.key and not any(k in key for k in args.key):
            continue
        params = from_npz(sample["params.npz"])
        body = load_body(str(params["model"]), args.basis, args.model_path)
        if params["basis_id"] != body.basis_id:
            raise ContractError(
                f"{key}: basis {params['basis_id']} in its params, {body.basis_id} given (--basis / --model-path)"
            )
        video = render_shard_clip(sample, params, body.mesh, args.size, args.ref_index, parts)
        audio, sr = from_flac(sample["flac"])
        (out / f"{key}.mp4").write_bytes(encode_mp4(video, 25, "libx264", 20, "veryfast", audio, sr))
        rows.append(np.concatenate(list(video[np.linspace(0, len(video) - 1, 3).astype(int)]), axis=0))
        print(out / f"{key}.mp4")
        done += 1
        if args.limit and done >= args.limit:
            break
    if not rows:
        raise SystemExit(f"no clip in {args.shards} matches {args.key}")
    import cv2

    sheet = out / "controls_sheet.png"
    cv2.imwrite(str(sheet), cv2.cvtColor(np.concatenate(rows, axis=1 if len(rows) < 4 else 0), cv2.COLOR_RGB2BGR))
    print(sheet)
    return 0
