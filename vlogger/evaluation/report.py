"""The HTML report of an evaluation: aggregate table, a plot per metric, sync curves, and
side-by-side frames (generated | reference) so a person can look, not only read."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
from matplotlib.figure import Figure  # the OO API: no pyplot state, no GUI backend


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'>"


def metric_plots(per_video: dict) -> list[str]:
    """One horizontal bar chart per scalar metric, a bar per video."""
    names = sorted({k for row in per_video.values() for k, v in row.items() if isinstance(v, int | float)})
    plots = []
    for name in names:
        vids = [v for v, row in per_video.items() if isinstance(row.get(name), int | float)]
        vals = [per_video[v][name] for v in vids]
        fig = Figure(figsize=(6, 0.3 * len(vids) + 1))
        ax = fig.subplots()
        ax.barh(vids, vals, color="#4c78a8")
        ax.set_title(name)
        plots.append(_png(fig))
    return plots


def sync_plot(per_video: dict) -> str | None:
    rows = {v: r["sync_curve"] for v, r in per_video.items() if "sync_curve" in r}
    if not rows:
        return None
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    for v, curve in rows.items():
        k = (len(curve) - 1) // 2
        ax.plot(range(-k, k + 1), curve, label=v, lw=1)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("offset (frames; > 0: mouth after sound)")
    ax.set_ylabel("correlation")
    ax.legend(fontsize=6)
    return _png(fig)


def drift_plot(per_video: dict) -> str | None:
    """Identity cosine and face colour difference (CIEDE2000) against the first second, per block, over time."""
    rows = {v: r for v, r in per_video.items() if "drift_colour_blocks" in r}
    if not rows:
        return None
    fig = Figure(figsize=(10, 3.5))
    ident, colour = fig.subplots(1, 2)
    for v, r in rows.items():
        key = next(k for k in r if k.endswith("_blocks") and k != "drift_colour_blocks")
        times = (np.arange(len(r["drift_colour_blocks"])) + 0.5) * r["drift_block_seconds"]
        ident.plot(times, r[key], marker="o", lw=1, label=v)
        colour.plot(times, r["drift_colour_blocks"], marker="o", lw=1, label=v)
        ident.set_ylabel(f"{key.removesuffix('_blocks')} (cosine to the first second)")
    colour.set_ylabel("face colour difference, CIEDE2000")
    for ax in (ident, colour):
        ax.set_xlabel("time (s, block centre)")
    colour.legend(fontsize=6)
    return _png(fig)


THUMBNAILS, THUMB_HEIGHT = 4, 160  # frames per video in the report, and their height in pixels


def thumbnail_indices(n_gen: int, n_ref: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """THUMBNAILS frames spread over the generated video, and the same ones of the reference."""
    idx = np.linspace(0, n_gen - 1, THUMBNAILS).astype(int)
    return idx, (np.minimum(idx, n_ref - 1) if n_ref is not None else None)


def side_by_side(gen: np.ndarray, ref: np.ndarray | None, height: int = THUMB_HEIGHT) -> bytes:
    """PNG of the given frames in a row at `height`, generated on top and reference below."""
    rows = [gen] + ([ref] if ref is not None else [])
    tiles = [
        np.concatenate([cv2.resize(f, (height * f.shape[1] // f.shape[0], height)) for f in r], axis=1) for r in rows
    ]
    width = min(t.shape[1] for t in tiles)
    image = np.concatenate([t[:, :width] for t in tiles], axis=0)
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def write_report(results: dict, path: Path, frames_dir: str = "frames") -> None:
    """report.html at `path`; each video's frames are the PNG `frames_dir/NAME.png` beside it,
    written while the video was scored (linked, not embedded, so the page stays small)."""
    agg = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in results["aggregate"].items())
    skipped = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in results["skipped_metrics"].items()
    )
    bad = "".join(f"<li>{html.escape(u['video'])}: {html.escape(u['reason'])}</li>" for u in results["unscorable"])
    curve = sync_plot(results["per_video"]) or ""
    drift = drift_plot(results["per_video"]) or "<p>no video long enough (two blocks)</p>"
    stems = [Path(name).stem for name in results["per_video"]]
    frames = "".join(
        f"<h3>{html.escape(stem)}</h3><img loading='lazy' src='{quote(frames_dir)}/{quote(stem)}.png'>"
        for stem in stems
        if (path.parent / frames_dir / f"{stem}.png").is_file()
    )
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>vlogger evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:2px 8px}} img{{margin:4px}}</style></head><body>
<h1>Evaluation report</h1>
<p>protocol {html.escape(str(results["protocol_version"]))}, LSE mode
{html.escape(str(results.get("lse_mode")))}; {results["scored"]} of {results["videos"]} videos scored.</p>
<h2>Aggregate</h2><table>{agg}</table>
{"".join(f"<p><b>Warning:</b> {html.escape(w)}</p>" for w in results.get("warnings", []))}
<h2>Skipped metrics</h2><ul>{skipped or "<li>none</li>"}</ul>
<h2>Unscorable videos</h2><ul>{bad or "<li>none</li>"}</ul>
<h2>Per metric</h2>{"".join(metric_plots(results["per_video"]))}
<h2>Sync curves</h2>{curve}
<h2>Drift over time</h2>{drift}
<h2>Frames (generated above, reference below)</h2>{frames}
</body></html>"""
    path.write_text(page)
