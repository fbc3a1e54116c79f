"""The paste mask beside a video: per frame, where the warped reference was pasted (stage 2's start,
the warped-reference baseline). `NAME.mp4` has it in `NAME.paste.npz` (`mask`: (T, S, S) bool at the
size it was pasted at, compressed, lossless); evaluation's border scores read it, generation and the
benchmark's items write it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from vlogger.core.errors import BadInput
from vlogger.core.files import write_atomic

SUFFIX = ".paste.npz"


def mask_path(video: Path) -> Path:
    """`NAME.paste.npz` beside `NAME.mp4`."""
    return video.with_name(video.stem + SUFFIX)


def write_paste_mask(video: Path, mask: np.ndarray) -> Path:
    """Store (T, S, S) masks (bool, or weights where > 0.5 counts) beside `video`."""
    buf = io.BytesIO()
    np.savez_compressed(buf, mask=np.asarray(mask) > 0.5)
    return write_atomic(mask_path(video), buf.getvalue())


def read_paste_mask(video: Path) -> np.ndarray | None:
    """The (T, S, S) bool masks beside `video`, None when it has none; BadInput when the file is unusable."""
    path = mask_path(video)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            mask = z["mask"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise BadInput(path, f"not a paste mask file: {e}") from e
    if mask.ndim != 3 or mask.dtype != bool:
        raise BadInput(path, f"expected (frames, height, width) bool masks, got {mask.dtype} {mask.shape}")
    return mask
