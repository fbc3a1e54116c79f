"""`vlogger dataset fetch`: a recipe's clips downloaded, cut and recorded, resumable and polite.

Layout of RAW (the --out folder):
  clips/FOLDER/NAME.mp4     the clips, named by the dataset's convention (written as .part, renamed)
  videos/ID.*               sources being cut (deleted once all their clips are done, unless kept)
  parts/clips-JJJ.jsonl     job JJJ's finished clips: name, file, source, span, crop, identity, size...
  parts/failed-JJJ.jsonl    job JJJ's failures: video, clips, reason, permanent
  manifest.jsonl, failed.jsonl   the merge of every job's parts
  identities.yaml           clip (path under clips/) -> person, the format `vlogger preprocess --identities` reads
  preprocess.yaml           overlay for `vlogger preprocess --config`: those identities + the held-out people

A clip is done once it is in a clips part and its file exists; a rerun skips it. A source whose
download failed for good (deleted, private, 404) or a span past the video's end is not retried
unless `retry_failed`; timeouts and rate limits are.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml
from tqdm import tqdm

from vlogger.core.errors import BadInput, UsageError
from vlogger.core.files import write_atomic
from vlogger.preprocessing.recipes.cut import cut, source_info
from vlogger.preprocessing.recipes.download import Downloader, Media, Transient, Unavailable, with_retries
from vlogger.preprocessing.recipes.spec import Clip, Recipe, Source
from vlogger.preprocessing.shards import read_manifest


class FetchLog:
    """The job's append-only records (fsynced, one lock: workers are threads)."""

    def __init__(self, out: Path, job: int, retry_failed: bool):
        self.clips_path = out / "parts" / f"clips-{job:03d}.jsonl"
        self.failed_path = out / "parts" / f"failed-{job:03d}.jsonl"
        self.clips_path.parent.mkdir(parents=True, exist_ok=True)
        self.done = {
            e["name"]
            for p in (out / "parts").glob("clips-*.jsonl")
            for e in read_manifest(p)
            if (out / "clips" / e["file"]).is_file()
        }
        # failed for good in any job's records: not tried again (each job rewrites only its own file)
        gone = [] if retry_failed else [e for p in (out / "parts").glob("failed-*.jsonl") for e in read_manifest(p)]
        self.gone = {c for e in gone if e["permanent"] for c in e["clips"]}
        kept = [] if retry_failed else [e for e in read_manifest(self.failed_path) if e["permanent"]]
        write_atomic(self.failed_path, "".join(json.dumps(e) + "\n" for e in kept))
        self._lock = threading.Lock()

    def _append(self, path: Path, entry: dict) -> None:
        with self._lock, path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def clip_done(self, entry: dict) -> None:
        self._append(self.clips_path, entry)
        self.done.add(entry["name"])

    def failed(self, source: Source, clips: list[str], reason: str, permanent: bool) -> None:
        entry = {"video": source.id, "url": source.url, "clips": clips, "reason": reason, "permanent": permanent}
        self._append(self.failed_path, entry)


def fetch(
    recipe: Recipe,
    out: Path,
    downloader: Downloader,
    cfg: dict,
    *,
    crop: bool = True,
    workers: int = 2,
    limit: int = 0,
    num_shards: int = 1,
    shard_index: int = 0,
    retry_failed: bool = False,
    holdout: list[str] | None = None,
) -> dict:
    """Fetch this job's share of the recipe's sources (every num_shards-th, the first `limit`) into out."""
    if not 0 <= shard_index < num_shards:
        raise UsageError(f"--shard-index {shard_index} must be in [0, {num_shards})")
    groups = list(recipe.by_source().items())[shard_index::num_shards]
    if limit:
        groups = groups[:limit]
    log = FetchLog(out, shard_index, retry_failed)
    mine = {s for s, _ in groups}
    for bad in recipe.invalid:
        if bad["video"] in mine and bad["clip"] not in log.gone:
            log.failed(recipe.sources[bad["video"]], [bad["clip"]], bad["reason"], permanent=True)
    todo = [
        (recipe.sources[s], [c for c in cs if c.name not in log.done and c.name not in log.gone]) for s, cs in groups
    ]
    todo = [(s, cs) for s, cs in todo if cs]
    stats = {
        "videos": len(groups),
        "videos_todo": len(todo),
        "clips_done_before": sum(c.name in log.done for _, cs in groups for c in cs),
        "clips": 0,
        "failed_clips": 0,
    }
    bar = tqdm(total=len(todo), desc="fetch", unit="video", disable=not todo)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [pool.submit(_fetch_source, s, cs, out, downloader, cfg, crop, log) for s, cs in todo]
        for fut in as_completed(futures):
            made, failed = fut.result()
            stats["clips"] += made
            stats["failed_clips"] += failed
            bar.update()
            bar.set_postfix(clips=stats["clips"], failed=stats["failed_clips"])
    bar.close()
    if num_shards == 1:  # an array's jobs are joined by one `merge` once all have finished
        stats.update(merge(out, holdout or []))
    return stats


def _fetch_source(
    source: Source, clips: list[Clip], out: Path, downloader: Downloader, cfg: dict, crop: bool, log: FetchLog
) -> tuple[int, int]:
    """Download one source (once), cut its clips; every failure is logged, none raised."""
    try:
        return _fetch_and_cut(source, clips, out, downloader, cfg, crop, log)
    except Exception as e:  # a batch job records the unexpected too, and carries on
        todo = [c.name for c in clips if c.name not in log.done]
        log.failed(source, todo, f"unexpected error: {type(e).__name__}: {e}", permanent=False)
        return len(clips) - len(todo), len(todo)


def _fetch_and_cut(
    source: Source, clips: list[Clip], out: Path, downloader: Downloader, cfg: dict, crop: bool, log: FetchLog
) -> tuple[int, int]:
    dl, cc = cfg["download"], cfg["cut"]
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in clips]
    try:
        media = with_retries(lambda: downloader.fetch(source, videos), dl["retries"], dl["backoff_seconds"])
    except Unavailable as e:
        log.failed(source, names, f"unavailable: {e}", permanent=True)
        return 0, len(clips)
    except Transient as e:
        log.failed(source, names, f"gave up after {dl['retries'] + 1} tries: {e}", permanent=False)
        return 0, len(clips)
    try:
        info = source_info(media.video)
    except BadInput as e:
        if media.owned:  # a damaged download is fetched again next time, not read again
            _remove(media)
        log.failed(source, names, f"downloaded file unreadable: {e.reason}", permanent=False)
        return 0, len(clips)
    made = failed = 0
    keep = False  # a cut that may succeed next time needs the source
    for clip in clips:
        start, end = clip.span(info.fps)
        if start >= info.duration or end > info.duration + cc["past_end_tolerance_seconds"]:
            reason = f"span {start:.2f}-{end:.2f} s ends past the video's end ({info.duration:.2f} s)"
            log.failed(source, [clip.name], reason, permanent=True)
            failed += 1
            continue
        end = min(end, info.duration)
        window = clip.crop if crop else None
        try:
            meta = cut(media.video, media.audio, out / "clips" / clip.rel, (start, end), window, cc["size"], cc)
        except BadInput as e:
            log.failed(source, [clip.name], f"cut failed: {e.reason}", permanent=False)
            failed, keep = failed + 1, True
            continue
        entry = {
            "name": clip.name,
            "file": clip.rel,
            "source": source.id,
            "url": source.url,
            "identity": clip.identity,
            "start": round(start, 3),
            "end": round(end, 3),
            "crop": list(window.pixels(info.width, info.height)) if window else None,
            "source_size": [info.width, info.height],
            **meta,
            **clip.extra,
        }
        log.clip_done(entry)
        made += 1
    if media.owned and not (keep or dl["keep_videos"]):
        _remove(media)
    return made, failed


def _remove(media: Media) -> None:
    for p in (media.video, media.audio):
        if p is not None:
            p.unlink(missing_ok=True)


def merge(out: Path, holdout: list[str]) -> dict:
    """Join every job's parts into manifest.jsonl, failed.jsonl, identities.yaml and preprocess.yaml."""
    parts = out / "parts"
    entries = {e["name"]: e for p in sorted(parts.glob("clips-*.jsonl")) for e in read_manifest(p)}
    entries = {k: e for k, e in entries.items() if (out / "clips" / e["file"]).is_file()}
    failed = [e for p in sorted(parts.glob("failed-*.jsonl")) for e in read_manifest(p)]
    failed = [{**e, "clips": [c for c in e["clips"] if c not in entries]} for e in failed]  # done since
    failed = [e for e in failed if e["clips"]]
    write_atomic(out / "manifest.jsonl", "".join(json.dumps(e) + "\n" for e in entries.values()))
    write_atomic(out / "failed.jsonl", "".join(json.dumps(e) + "\n" for e in failed))
    identities = {e["file"]: e["identity"] for e in entries.values()}
    write_atomic(out / "identities.yaml", yaml.safe_dump(identities, sort_keys=True))
    overlay = {"shards": {"identities": str((out / "identities.yaml").resolve()), "test_identities": sorted(holdout)}}
    write_atomic(
        out / "preprocess.yaml",
        "# written by `vlogger dataset fetch`: vlogger preprocess --input "
        f"{out / 'clips'} --config {out / 'preprocess.yaml'}\n" + yaml.safe_dump(overlay),
    )
    seconds = sum(e["seconds"] for e in entries.values())
    return {
        "clips_total": len(entries),
        "hours_total": round(seconds / 3600, 4),
        "identities_total": len(set(identities.values())),
        "failed_total": sum(len(e["clips"]) for e in failed),
    }


def holdout_identities(paths: list[Path]) -> list[str]:
    """The people of benchmark manifests (configs/benchmarks/*.yaml `items[].identity`): kept out of training."""
    people: set[str] = set()
    for p in paths:
        try:
            items = yaml.safe_load(Path(p).read_text())["items"]
            people |= {it["identity"] for it in items}
        except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
            raise BadInput(p, f"not a benchmark manifest with items[].identity: {e}") from e
    return sorted(people)
