"""Stage-2 training windows: frames at the training size, their rendered controls, a reference.

Controls are rendered in the loader (the renderer makes hundreds of frames per second per
core at these sizes), from the clip's fitted parameters against the reference frame, so the
shards need no pre-rendered controls and any training size works. They draw the model's parts
(`model.parts`, default all the shards carry: hands and iris make 17 channels, not 14).
"""

from __future__ import annotations

import numpy as np

from vlogger.body.control_video import ClipRenderer, params_slice
from vlogger.body.fitting import MeshModel, load_body
from vlogger.body.params import require_parts
from vlogger.core.frames import to_unit
from vlogger.core.spec import LEGACY_PARTS
from vlogger.core.video import decode_frames
from vlogger.datasets.windows import ClipWindows, ShardWindows


class ToVideoWindows(ClipWindows):
    """Raw clip sample -> windows of `frames` frames: target frames, controls, reference image."""

    def __init__(
        self,
        frames: int,
        size: int,
        min_ref_gap: int,
        per_clip: int | None,
        seed: int,
        model: dict,
        parts: tuple[str, ...] = LEGACY_PARTS,
    ):
        super().__init__(frames, min_ref_gap, per_clip, seed)
        self.size, self.model, self.parts = size, model, parts

    def mesh(self, name: str) -> MeshModel:
        """The body model's mesh (`load_body` loads it once per loader worker)."""
        return load_body(name, self.model.get("basis"), self.model.get("model_path")).mesh

    def __call__(self, sample: dict) -> list[dict]:
        key = sample["__key__"]
        meta, params = self.read(sample)
        require_parts(params, self.parts, f"{sample.get('__url__', '?')}: clip {key}")
        src = int(params["size"])
        mesh = self.mesh(str(params["model"]))
        out, picks = [], list(self.starts(meta))
        # one decode of the clip for all its windows (each decode runs from the clip's start)
        wanted = sorted({i for start, ref in picks for i in (*range(start, start + self.window), ref)})
        decoded = dict(zip(wanted, decode_frames(sample["mp4"], wanted), strict=True))
        for start, ref in picks:
            frames = np.stack([decoded[i] for i in (*range(start, start + self.window), ref)])
            renderer = ClipRenderer(mesh, frames[-1], params_slice(params, ref, ref + 1), self.size, parts=self.parts)
            part = params_slice(params, start, start + self.window)
            controls = next(renderer.controls(part, src, chunk=self.window)).stacked
            unit = to_unit(frames, self.size)
            out.append({"key": key, "start": start, "frames": unit[:-1], "reference": unit[-1], "controls": controls})
        return out


class VideoDataModule(ShardWindows):
    """Stage-2 windows: `data.frames` frames in phase `clip`, single frames in phase `single`."""

    def windows(self, per_clip: int | None, seed: int) -> ToVideoWindows:
        d = self.cfg["data"]
        frames = d["frames"] if self.cfg["phase"] == "clip" else 1
        parts = self.spec.model_parts(self.cfg["model"]["parts"], "model.parts")
        return ToVideoWindows(frames, d["size"], d["min_ref_gap"], per_clip, seed, self.cfg["model"], parts)
