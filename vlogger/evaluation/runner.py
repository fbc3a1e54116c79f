"""`vlogger evaluate`: score a folder of generated videos under the pinned protocol.

Pairs files by name: generated/NAME.mp4 with reference/NAME.(mp4|mov|mkv|webm) (ground truth:
paired metrics + identity reference = its first frame) or reference/NAME.(png|jpg|jpeg)
(identity reference only), and audio/NAME.wav when --audio is given (else the video's
own track); generated/NAME.paste.npz, where generation wrote one, gives the border scores their
paste contour. Metrics whose weights are missing are skipped with the command that fetches
them; a video that cannot be scored is listed with the reason and the rest go on.

Memory does not grow with the number of videos or their length: each video (with its
reference) is decoded once, chunk by chunk, tracked and handed to the metrics' frame
readers, then dropped; metrics keep running sums; the report keeps one small PNG per
video, written to disk as it is made. With `workers` > 1 videos are scored in worker
processes and folded into the sums in video order, so the numbers are those of one worker.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vlogger.core.errors import BadInput
from vlogger.core.paste_mask import mask_path
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation import collection
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, SampledFrames, VideoMetric
from vlogger.evaluation.report import side_by_side, thumbnail_indices, write_report
from vlogger.evaluation.tracks import eval_tracker, open_video, paired_chunks, track_source, tracked, video_audio

VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg")
AUDIO_EXT = (".wav", ".flac", ".mp3")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One generated video and the files it is scored against."""

    gen: Path
    ref: Path | None = None  # a video (ground truth) or an image (identity reference)
    audio: Path | None = None


@dataclass
class VideoResult:
    """What comes back from scoring one video: small enough to pass between processes."""

    video: str
    measured: dict[str, Measured] = field(default_factory=dict)  # metric name -> measurement
    thumbnails: bytes | None = None  # PNG for the report
    seconds: float = 0.0
    error: str | None = None


def _find(folder: Path | None, stem: str, exts: tuple[str, ...]) -> Path | None:
    if folder is None:
        return None
    return next((folder / (stem + e) for e in exts if (folder / (stem + e)).is_file()), None)


def find_jobs(generated: Path, reference: Path | None, audio_dir: Path | None) -> list[Job]:
    videos = sorted(p for p in generated.iterdir() if p.suffix.lower() in VIDEO_EXT)
    if not videos:
        raise BadInput(generated, "no generated videos (mp4/mov/mkv/webm) in this folder")
    refs = [_find(reference, p.stem, VIDEO_EXT) or _find(reference, p.stem, IMAGE_EXT) for p in videos]
    return [Job(p, ref, _find(audio_dir, p.stem, AUDIO_EXT)) for p, ref in zip(videos, refs, strict=True)]


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image, or BadInput naming the file."""
    image = cv2.imread(str(path))
    if image is None:
        raise BadInput(path, "cannot read the reference image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class Scorer:
    """Scores one video at a time with its own tracker and metric objects."""

    def __init__(self, protocol: dict, metrics: list[VideoMetric], thumbnails: bool) -> None:
        self.protocol, self.metrics, self.thumbnails = protocol, metrics, thumbnails
        self.tracker = eval_tracker(protocol)

    def __call__(self, job: Job) -> VideoResult:
        """Never raises for one bad video: the reason is recorded and the batch goes on."""
        try:
            return self._score(job)
        except BadInput as e:  # the reference's own faults say which file they are about
            why = e.reason if Path(e.path) == job.gen else f"reference {e.path}: {e.reason}"
            return VideoResult(job.gen.name, error=why)
        except Exception as e:  # a batch job records the unexpected too, and carries on
            log.exception("scoring %s", job.gen)
            return VideoResult(job.gen.name, error=f"unexpected error: {type(e).__name__}: {e}")

    def _score(self, job: Job) -> VideoResult:
        gen = open_video(job.gen, self.protocol)
        ref_is_video = job.ref is not None and job.ref.suffix.lower() in VIDEO_EXT
        ref = open_video(job.ref, self.protocol) if ref_is_video else None
        image = read_image(job.ref) if job.ref is not None and not ref_is_video else None
        audio = video_audio(gen, self.protocol, job.audio)
        has = {"audio": audio is not None, "reference_video": ref is not None}
        has["reference_image"] = ref is not None or image is not None
        has["paste_mask"] = mask_path(job.gen).is_file()
        active = [m for m in self.metrics if m.needs.met(**has)]
        readers = {m.name: m.reader(gen, ref) for m in active}
        gen_idx, ref_idx = thumbnail_indices(gen.n_frames, ref and ref.n_frames) if self.thumbnails else ([], None)
        # the report's frames, and a reference video's first frame as the identity reference
        kept = SampledFrames(gen_idx, [0, *(ref_idx if ref_idx is not None else [])])
        single = [r for r in readers.values() if r is not None and not r.paired] + [kept]

        def feed(start: int, g: np.ndarray | None, r: np.ndarray | None, to: list[FrameReader]) -> None:
            for reader in to:
                reader.add(start, g, r)

        # one video at a time, as a batch of one video on its own would: one tracker, one decoder
        gen_track = track_source(gen, self.tracker, lambda start, chunk: feed(start, chunk, None, single))
        video = EvalVideo(job.gen.name, tracked(gen, gen_track, audio, self.protocol), reference_image=image)
        if ref is not None:
            ref_track = track_source(ref, self.tracker, lambda start, chunk: feed(start, None, chunk, single))
            video.ref, video.reference_image = tracked(ref, ref_track, None, self.protocol), kept.ref([0])[0]
            paired = [r for r in readers.values() if r is not None and r.paired]
            for start, g, r in paired_chunks(gen, ref) if paired else ():
                feed(start, g, r, paired)
        png = None
        if self.thumbnails:
            png = side_by_side(kept.gen(gen_idx), kept.ref(ref_idx) if ref_idx is not None else None)
        measured = {m.name: m.measure(video, readers[m.name]) for m in active}
        return VideoResult(job.gen.name, measured, png, gen.n_frames / self.protocol["video"]["fps"])


_scorer: Scorer | None = None  # one per worker process, built by _init_worker


def _init_worker(protocol: dict, names: set[str], thumbnails: bool) -> None:
    filter_native_logs()
    cv2.setNumThreads(1)  # per-pixel results either way; torch keeps its thread count, since its kernels
    # (Inception's, for one) give other last digits with another, and workers must match one process
    built = collection.build(protocol, names)
    missing = {name: m for name, m in built if isinstance(m, str)}
    if missing:  # the parent could build them: the same machine must
        raise RuntimeError(f"worker cannot build metrics the parent built: {missing}")
    global _scorer
    _scorer = Scorer(protocol, [m for _, m in built], thumbnails)


def _work(job: Job) -> VideoResult:
    return _scorer(job)


def _results(
    jobs: list[Job], protocol: dict, metrics: list[VideoMetric], thumbnails: bool, workers: int
) -> Iterator[VideoResult]:
    """Results in job order. Workers are spawned (mediapipe's graphs abort in a child forked from
    a process that ran one); at most 2 x workers results wait, so memory stays bounded."""
    if workers <= 1:
        yield from map(Scorer(protocol, metrics, thumbnails), jobs)
        return
    init = (protocol, {m.name for m in metrics}, thumbnails)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(_work, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _aggregate(built: Iterable[tuple[str, VideoMetric | str]]) -> tuple[dict[str, float], dict[str, str]]:
    aggregate, skipped = {}, {}
    for name, metric in built:
        if isinstance(metric, str):
            skipped[name] = metric
        elif metric.update_count:
            try:
                aggregate.update(metric.compute())
            except (RuntimeError, ValueError) as e:  # e.g. FID/FVD with fewer than 2 samples
                skipped[name] = str(e)
    return aggregate, skipped


MIN_FRECHET_SAMPLES = 2048  # below this, FID/FVD covariances are rank-deficient and the value biased upwards


def sample_warnings(aggregate: dict[str, float]) -> list[str]:
    """A line for each Frechet score computed from fewer than MIN_FRECHET_SAMPLES samples on either side."""
    out = []
    for metric in ("fid", "fvd"):
        n = min(aggregate.get(f"{metric}_n_samples", 1 << 30), aggregate.get(f"{metric}_n_reference", 1 << 30))
        if n < MIN_FRECHET_SAMPLES:
            out.append(
                f"{metric} from {n} samples (< {MIN_FRECHET_SAMPLES}): biased upwards and not comparable with "
                "published values computed from more; report it with its n_samples"
            )
    return out


def evaluate(
    generated: Path,
    reference: Path | None,
    audio_dir: Path | None,
    protocol: dict,
    frames_dir: Path | None = None,
    workers: int = 1,
) -> dict:
    """Per-video scores, aggregates and the list of unscorable videos. With `frames_dir`, each
    scored video's report frames are written there (NAME.png) as soon as it is scored."""
    jobs = find_jobs(generated, reference, audio_dir)
    built = collection.build(protocol)
    metrics = [m for _, m in built if not isinstance(m, str)]
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
    per_video, unscorable, seconds = {}, [], 0.0
    results = _results(jobs, protocol, metrics, frames_dir is not None, workers)
    for res in tqdm(results, total=len(jobs), desc="evaluate", unit="video"):
        if res.error is not None:
            unscorable.append({"video": res.video, "reason": res.error})
            continue
        row: dict = {}
        for metric in metrics:
            if metric.name in res.measured:
                metric.update(res.measured[metric.name])
                row.update(res.measured[metric.name].row)
        per_video[res.video] = row
        seconds += res.seconds
        if res.thumbnails is not None:
            (frames_dir / f"{Path(res.video).stem}.png").write_bytes(res.thumbnails)
    aggregate, skipped = _aggregate(built)
    return {
        "warnings": sample_warnings(aggregate),
        "protocol_version": protocol["version"],
        "lse_mode": protocol["lse"]["mode"],
        "videos": len(jobs),
        "scored": len(per_video),
        "video_seconds": seconds,
        "aggregate": aggregate,
        "per_video": per_video,
        "unscorable": unscorable,
        "skipped_metrics": skipped,
    }


def write_results(results: dict, out: Path) -> Path:
    """results.json and report.html in out (the report links the frames evaluate wrote to out/frames)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    write_report(results, out / "report.html")
    return out / "results.json"
