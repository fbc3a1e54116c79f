"""Getting a source video: YouTube through yt-dlp, or a mirror (http(s) URL template or local folder).

Every downloader returns the finished local files or raises `Unavailable` (deleted, private,
geo-blocked, 404: retrying will not help, the run records it and goes on) or `Transient`
(timeout, rate limit, 5xx: retried with exponential back-off). Downloads go to a `.part` name
and are renamed when complete, so an interrupted download is never taken for a video.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from vlogger.core.errors import UsageError
from vlogger.preprocessing.recipes.spec import Source

T = TypeVar("T")


class Unavailable(Exception):
    """The video cannot be had from this downloader; retrying will not change that."""


class Transient(Exception):
    """A failure that may pass: a timeout, a rate limit, a server error, a cut connection."""


@dataclass(frozen=True)
class Media:
    """A downloaded source: its video file, a separate audio file where the download gives one,
    and whether the files are ours to delete once the clips are cut (not a local mirror's)."""

    video: Path
    audio: Path | None = None
    owned: bool = True


class Downloader(Protocol):
    def fetch(self, source: Source, folder: Path) -> Media: ...


def with_retries(fn: Callable[[], T], retries: int, backoff: float, sleep: Callable[[float], None] = time.sleep) -> T:
    """fn(), retried on Transient up to `retries` times, waiting backoff * 2^k (+ up to 25 % jitter)."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Transient:
            if attempt == retries:
                raise
            sleep(backoff * 2**attempt * (1 + random.random() / 4))
    raise AssertionError("unreachable")


class Mirror:
    """A lab mirror: `template` with `{id}`, an http(s) URL (`http://host/hdtf/{id}.mp4`) or a local
    path (`/data/youtube/{id}.mp4`, read in place, never copied)."""

    def __init__(self, template: str, timeout: float):
        if "{id}" not in template:
            raise UsageError(f"--mirror {template!r} needs {{id}} where the video id goes")
        self.template, self.timeout = template, timeout

    def fetch(self, source: Source, folder: Path) -> Media:
        where = self.template.format(id=source.id)
        if not where.startswith(("http://", "https://")):
            path = Path(where.removeprefix("file://"))
            if not path.is_file():
                raise Unavailable(f"{path}: not in the mirror folder")
            return Media(path, owned=False)
        dest = folder / f"{source.id}.mp4"
        if not dest.is_file():
            http_get(where, dest, self.timeout)
        return Media(dest)


def http_get(url: str, dest: Path, timeout: float) -> None:
    """Stream `url` to dest.part, check its length, rename to dest."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, part.open("wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
            expected = r.headers.get("Content-Length")
    except urllib.error.HTTPError as e:
        if e.code == 429 or e.code >= 500:
            raise Transient(f"HTTP {e.code} {e.reason} from {url}") from e
        raise Unavailable(f"HTTP {e.code} {e.reason} from {url}") from e
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise Transient(f"{url}: {getattr(e, 'reason', e)}") from e
    got = part.stat().st_size
    if expected is not None and got != int(expected):
        raise Transient(f"{url}: connection closed after {got} of {expected} bytes")
    os.replace(part, dest)


# what yt-dlp says of videos that are gone for good (anything else, a 429 or a bot check included, may pass)
_GONE = (
    "video unavailable",
    "this video is unavailable",
    "is not available",
    "private video",
    "has been removed",
    "account associated with this video has been terminated",
    "copyright",
    "sign in to confirm your age",
    "does not exist",
    "http error 404",
    "http error 410",
    "requested format is not available",
)


def youtube_failure(message: str) -> type[Exception]:
    """Unavailable or Transient, from a yt-dlp error message."""
    return Unavailable if any(g in message.lower() for g in _GONE) else Transient


_YTDLP_LOG = logging.getLogger("vlogger.yt_dlp")  # yt-dlp's own messages: its errors are reported as failures
_YTDLP_LOG.addHandler(logging.NullHandler())
_YTDLP_LOG.propagate = False


class YouTube:
    """yt-dlp (the `datasets` extra). Video and audio are fetched as separate files, the cutter
    reads both: merging them would need the ffmpeg binary, which this toolkit does not require."""

    def __init__(self, resolution: str, timeout: float):
        try:
            import yt_dlp  # noqa: F401
        except ImportError as e:
            raise UsageError("YouTube downloads need yt-dlp: pip install 'vlogger[datasets]' (or use --mirror)") from e
        self.resolution, self.timeout = resolution, timeout

    def fetch(self, source: Source, folder: Path) -> Media:
        cap = f"[height<={source.height}]" if self.resolution == "authors" and source.height else ""
        video = self._one(source, folder, "video", f"bv*{cap}[ext=mp4]/bv*{cap}/b{cap}")
        audio = self._one(source, folder, "audio", "ba[ext=m4a]/ba/b")  # b: a video with no audio-only stream
        return Media(video, audio)

    def _one(self, source: Source, folder: Path, kind: str, fmt: str) -> Path:
        done = sorted(folder.glob(f"{source.id}.{kind}.*"))
        if done:
            return done[0]
        import yt_dlp

        tmp = folder / f".{source.id}.{kind}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        opts = {
            "format": fmt,
            "outtmpl": str(tmp / f"{source.id}.{kind}.%(ext)s"),
            "quiet": True,
            "noprogress": True,
            "logger": _YTDLP_LOG,
            "noplaylist": True,
            "socket_timeout": self.timeout,
            "retries": 0,
        }
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                ydl.download([source.url])
        except yt_dlp.utils.DownloadError as e:
            msg = str(e).removeprefix("ERROR: ")
            raise youtube_failure(msg)(msg) from e
        got = [p for p in tmp.iterdir() if not p.name.endswith(".part")]
        if len(got) != 1:
            raise Transient(f"yt-dlp left {len(got)} files for the {kind} of {source.url}")
        final = folder / got[0].name
        os.replace(got[0], final)
        shutil.rmtree(tmp, ignore_errors=True)
        return final
