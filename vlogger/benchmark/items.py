"""Each item made ready once: its ground-truth segment, driving audio and reference, tracked and
fitted with a data spec, and the two baselines that need no model (the reference held still,
and the true motion through the renderer). A folder of them is reused by every run that shares
its spec and size (`items/spec.json` says which), so baselines and checkpoints are scored on
the very same frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vlogger.benchmark.manifest import Item, Manifest, resolve
from vlogger.body.reference import read_image
from vlogger.core.audio import to_flac
from vlogger.core.errors import BadInput, ContractError
from vlogger.core.files import write_atomic, write_json
from vlogger.core.paste_mask import write_paste_mask
from vlogger.core.spec import DataSpec
from vlogger.core.video import encode_mp4, probe, read_frames, resample_indices
from vlogger.generation.pipeline import BodyFiles, inference_config
from vlogger.generation.reconstruct import reconstruction, track_clips, warped_baseline

TRUTH, AUDIO, REFERENCE, PHOTO = "truth", "audio", "reference", "photo"
STATIC, WARPED = "static", "warped-reference"  # the model-free baselines, beside the truth
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class ItemFiles:
    """Where an item's prepared files are inside an items folder."""

    root: Path
    id: str

    def video(self, kind: str) -> Path:
        return self.root / kind / f"{self.id}.mp4"

    @property
    def audio(self) -> Path:
        return self.root / AUDIO / f"{self.id}.flac"

    @property
    def reference(self) -> Path:
        """The reference crop (what the baselines hold still or warp)."""
        return self.root / REFERENCE / f"{self.id}.png"

    @property
    def photo(self) -> Path:
        """The reference as a whole frame: a model is given this, as a user gives a photo, and crops
        it itself, so its video has the truth's framing (a crop of the crop would zoom in)."""
        return self.root / PHOTO / f"{self.id}.png"

    def ready(self) -> bool:
        """Every file written (each atomically; the truth last)."""
        files = (self.audio, self.reference, self.photo, *map(self.video, (STATIC, WARPED, TRUTH)))
        return all(p.is_file() for p in files)


def _span(sample: dict) -> tuple[float, float]:
    """[start, end) seconds of a tracked clip in its source video."""
    meta = sample["json"]
    return meta["start_seconds"], meta["start_seconds"] + meta["n_frames"] / meta["fps"]


def _segment_frames(item: Item, sample: dict) -> tuple[int, int]:
    """[first, end) frames of the item's segment inside the tracked clip, or BadInput."""
    meta = sample["json"]
    fps, n, (s0, s1) = meta["fps"], meta["n_frames"], _span(sample)
    first = round((item.start - s0) * fps)
    end = n if item.end is None else round((item.end - s0) * fps)
    if end > n:
        raise BadInput(
            meta["source"],
            f"item {item.id}: the segment ends at {item.end} s, the tracked clip at {s1:.2f} s "
            "(a shot cut, the face lost, or the video's end)",
        )
    return first, end


def _clip_holding(item: Item, samples: list[dict]) -> dict:
    for s in samples:
        s0, s1 = _span(s)
        if s0 <= item.start < s1:
            return s
    spans = ", ".join("[{:.2f}, {:.2f})".format(*_span(s)) for s in samples)
    raise BadInput(
        samples[0]["json"]["source"], f"item {item.id}: no tracked clip holds {item.start} s (clips {spans})"
    )


def prepare_item(item: Item, root: Path, spec: DataSpec, body: BodyFiles, size: int, out: Path) -> None:
    """Track and fit the item's video with `spec`, write its truth, audio, reference and both
    model-free baselines at `size` px into `out` (BadInput when the item cannot be made)."""
    video = resolve(root, item.video)
    pre = inference_config(spec, body)
    pre["clips"]["max_seconds"] = 1e6  # one clip per shot: the item's times stay inside one
    samples = track_clips(video, pre)
    for s in samples:
        s["json"]["source"] = str(video)
    sample = _clip_holding(item, samples)
    first, end = _segment_frames(item, sample)
    meta = sample["json"]
    image = audio = None
    if "image" in item.reference:
        image, ref_frame = resolve(root, item.reference["image"]), first
        photo = read_image(image)
    else:
        ref_frame = round((float(item.reference["frame"]) - meta["start_seconds"]) * meta["fps"])
        if not 0 <= ref_frame < meta["n_frames"]:
            raise BadInput(video, f"item {item.id}: the reference frame is outside the tracked clip that holds it")
        photo = source_frame(video, float(item.reference["frame"]), meta["fps"])
    if item.audio != "own":
        audio = resolve(root, item.audio)
    rec = reconstruction(sample, spec, body, ref_frame, first, end, image, audio)
    files, result = ItemFiles(out, item.id), rec.motion
    truth = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in rec.ground_truth])
    still = cv2.resize(result.reference.crop, (size, size), interpolation=cv2.INTER_AREA)
    write_atomic(files.audio, to_flac(result.audio, SAMPLE_RATE))
    write_atomic(files.reference, _png(result.reference.crop))
    write_atomic(files.photo, _png(photo))
    warped, pasted = warped_baseline(result, size)
    for kind in (WARPED, TRUTH):  # the border scores' contour: the baseline's seam, and the truth's level there
        write_paste_mask(files.video(kind), pasted)
    for kind, frames in ((STATIC, np.repeat(still[None], len(truth), 0)), (WARPED, warped)):
        write_atomic(files.video(kind), encode(frames, result.audio, result.fps))
    write_atomic(files.video(TRUTH), encode(truth, result.audio, result.fps))


def source_frame(video: Path, seconds: float, fps: int) -> np.ndarray:
    """The whole frame on screen at `seconds`, on the same resampled time grid preprocessing uses."""
    info = probe(video)
    idx = resample_indices(info.frame_times, info.duration, fps)
    return next(read_frames(info, [idx[min(round(seconds * fps), len(idx) - 1)]]))


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def encode(frames: np.ndarray, audio: np.ndarray, fps: int) -> bytes:
    """An item video as every benchmark video is written: the driving audio muxed in."""
    return encode_mp4(frames, fps, "libx264", 18, "veryfast", audio, SAMPLE_RATE)


def items_key(manifest: Manifest, spec: DataSpec) -> dict:
    """What an items folder was made with: reused only where all of it agrees."""
    return {"benchmark": manifest.name, "version": manifest.version, "size": manifest.size, "spec": spec.to_dict()}


def prepare(
    manifest: Manifest, root: Path, items: list[Item], spec: DataSpec, body: BodyFiles, out: Path
) -> dict[str, str]:
    """Prepare the items not prepared yet (progress per item); returns item id -> reason for the
    ones that cannot be made (recorded in failed.json; the rest go on)."""
    key = items_key(manifest, spec)
    spec_file = out / "spec.json"
    if spec_file.is_file() and (had := json.loads(spec_file.read_text())) != key:
        diff = {k: (had.get(k), v) for k, v in key.items() if had.get(k) != v}
        raise ContractError(f"{out}: items prepared with {diff} (theirs, this run's); use another --items-dir")
    write_json(spec_file, key)
    failed_file = out / "failed.json"
    failed = {k: v for k, v in _read(failed_file).items() if k not in {i.id for i in items}}
    todo = [i for i in items if not ItemFiles(out, i.id).ready()]
    for item in tqdm(todo, desc="prepare items", unit="item"):
        try:
            prepare_item(item, root, spec, body, manifest.size, out)
        except BadInput as e:
            failed[item.id] = str(e)
            tqdm.write(f"item {item.id} cannot be prepared: {e}")
    write_json(failed_file, failed)
    return {k: v for k, v in failed.items() if k in {i.id for i in items}}


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def ready_items(items: list[Item], out: Path) -> Iterator[Item]:
    return (i for i in items if ItemFiles(out, i.id).ready())
