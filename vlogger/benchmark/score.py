"""`vlogger benchmark score`: videos made elsewhere (another method, another codebase), named by
item id, scored on the benchmark's items. Whatever can be scored is; every video that cannot
(missing, not an item, another frame rate or size) is named with the reason."""

from __future__ import annotations

from pathlib import Path

from vlogger.benchmark.manifest import Manifest
from vlogger.core.errors import BadInput
from vlogger.core.video import probe
from vlogger.evaluation.runner import VIDEO_EXT


def check_videos(manifest: Manifest, folder: Path, fps: float, size: int) -> tuple[dict[str, Path], dict[str, str]]:
    """(item id -> video that can be scored, file or item -> why it is not scored)."""
    if not folder.is_dir():
        raise BadInput(folder, "no such folder of videos")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_EXT}
    ids = [i.id for i in manifest.items]
    problems = {}
    if len(found) != len(ids):
        problems["(count)"] = f"{len(found)} videos for the {len(ids)} items of {manifest.name} v{manifest.version}"
    for stem in sorted(set(found) - set(ids)):
        problems[found[stem].name] = f"not an item of {manifest.name}: ignored"
    usable = {}
    for item_id in ids:
        path = found.get(item_id)
        if path is None:
            problems[item_id] = f"missing: no {item_id}.mp4 in {folder}"
            continue
        try:
            info = probe(path)
        except Exception as e:  # an unreadable file is named, the others go on
            problems[path.name] = f"unreadable: {e}"
            continue
        if abs(info.source_fps - fps) > 0.01:
            problems[path.name] = f"{info.source_fps:.3f} fps; the protocol scores {fps:g} fps videos"
        elif (info.width, info.height) != (size, size):
            problems[path.name] = f"{info.width}x{info.height}; the benchmark scores {size}x{size} crops"
        else:
            usable[item_id] = path
    return usable, problems
