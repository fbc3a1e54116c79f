"""The leaderboard: measured rows (checkpoints, other methods' videos, baselines) in a JSON file,
shown as markdown, a sortable self-contained HTML page, or a W&B table. The one board of the
toolkit: `vlogger benchmark` adds a row per run of a manifest, `vlogger leaderboard add` one per
`vlogger evaluate` of a folder (benchmark "folder").

Rows are grouped by benchmark (name and version) and by the conditions their numbers were made
under (every text-valued field of the results: protocol version, identity backbone, ...), so
numbers of two protocols never share a table. Columns come from the rows, arrows from each
metric's direction. Published numbers (another test set, another protocol) are shown in a
section of their own with their source, never ranked with measured rows.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
from pathlib import Path

import yaml

from vlogger.core.errors import BadInput
from vlogger.core.files import read_json, write_atomic
from vlogger.evaluation.collection import directions

ARROWS = {True: "↑", False: "↓", None: ""}
FOLDER = "folder"  # the benchmark of a `vlogger evaluate` result: that folder's videos, no manifest
MARKS = {"floor": "floor", "ceiling": "ceiling", "baseline": "baseline", "external": "other method's videos"}


def make_row(results: dict, name: str, kind: str, report: Path | None) -> dict:
    """A leaderboard row of one evaluation (`kind`: model, external, floor, baseline, ceiling): of a
    benchmark run (its results carry the manifest and provenance) or of `vlogger evaluate` on a
    folder (benchmark "folder", out of the folder's videos)."""
    bench = results.get("benchmark")
    conditions = {k: v for k, v in results.items() if isinstance(v, str) or (v is None and not k.startswith("_"))}
    return {
        "name": name,
        "kind": kind,
        "benchmark": f"{bench['benchmark']['name']} v{bench['benchmark']['version']}" if bench else FOLDER,
        "conditions": conditions,
        "items": results["scored"],
        "of": bench["benchmark"]["items"] if bench else results["videos"],
        "metrics": results["aggregate"],
        "report": str(report) if report else None,
        "added": datetime.date.today().isoformat(),
        "provenance": {k: v for k, v in bench.items() if k != "benchmark"} if bench else {},
    }


def _key(row: dict) -> tuple:
    return row["benchmark"], json.dumps(row["conditions"], sort_keys=True)


def read_result(path: Path) -> dict:
    """The results.json of `vlogger evaluate` or `vlogger benchmark run`, checked for what a row needs."""
    res = read_json(path)
    missing = [k for k in ("scored", "aggregate") if not isinstance(res, dict) or k not in res]
    if missing:
        raise BadInput(path, f"no {', '.join(missing)}: not a results.json of `vlogger evaluate` or `benchmark run`")
    return res


def load(board: Path) -> list[dict]:
    return read_json(board) if board.is_file() else []


def add(board: Path, row: dict) -> list[dict]:
    """Add a row (replacing the row of the same name, benchmark and conditions); atomic."""
    rows = [r for r in load(board) if (r["name"], *_key(r)) != (row["name"], *_key(row))] + [row]
    write_atomic(board, json.dumps(rows, indent=1, default=float))
    return rows


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(_key(r), []).append(r)
    return out


PUBLISHED_KEYS = ("method", "paper", "table", "benchmark", "protocol", "source", "values")


def load_published(path: Path) -> list[dict]:
    """Published reference numbers: a YAML list of {method, paper, table, benchmark, protocol, source
    (the URL the numbers were read from), values (metric -> the number as printed), verified, copy}.
    Values stay as written (no rounding); an entry counts as checked only with `verified: true`."""
    try:
        rows = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(path, f"cannot read published numbers: {e}") from e
    if not isinstance(rows, list):
        raise BadInput(path, "published numbers must be a YAML list of entries")
    for k, r in enumerate(rows):
        if not isinstance(r, dict) or set(PUBLISHED_KEYS) - set(r):
            raise BadInput(path, f"entry {k}: needs {list(PUBLISHED_KEYS)}")
        if not str(r["source"]).startswith(("https://", "http://")):
            raise BadInput(path, f"entry {k} ({r['method']}): source must be an http(s) URL, not {r['source']!r}")
        if not isinstance(r["values"], dict) or not r["values"]:
            raise BadInput(path, f"entry {k} ({r['method']}): values must map metric names to numbers")
        for name, v in r["values"].items():
            try:
                float(v)
            except (TypeError, ValueError):
                raise BadInput(path, f"entry {k} ({r['method']}): {name} = {v!r} is not a number") from None
    return rows


def _published_groups(published: list[dict]) -> dict[tuple, list[dict]]:
    """One table per paper table and benchmark (its own columns), in file order."""
    out: dict[tuple, list[dict]] = {}
    for p in published:
        out.setdefault((p["paper"], p["table"], p["benchmark"], p["protocol"], p["source"]), []).append(p)
    return out


def _published_columns(group: list[dict]) -> list[str]:
    return list(dict.fromkeys(c for p in group for c in p["values"]))  # the paper's column order


def _method(p: dict) -> str:
    return p["method"] + ("" if p.get("verified") is True else " (unverified)")


def _columns(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in r["metrics"]})


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)) else "–"


def _title(key: tuple) -> str:
    bench, conditions = key
    return f"{bench} — " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in json.loads(conditions).items())


def _name(row: dict) -> str:
    mark = MARKS.get(row["kind"])
    return row["name"] + (f" ({mark})" if mark else "")


def markdown(rows: list[dict], published: list[dict] = ()) -> str:
    better, parts = directions(), []
    for key, group in groups(rows).items():
        cols = _columns(group)
        head = "| name | items | " + " | ".join(f"{c} {ARROWS[better.get(c)]}".strip() for c in cols) + " |"
        lines = [f"### {_title(key)}", "", head, "|---" * (len(cols) + 2) + "|"]
        for r in group:
            vals = " | ".join(_fmt(r["metrics"].get(c)) for c in cols)
            lines.append(f"| {_name(r)} | {r['items']}/{r['of']} | {vals} |")
        if key[0] != FOLDER and not any(r["kind"] in ("floor", "ceiling") for r in group):
            lines += ["", "(no floor or ceiling here: run `vlogger benchmark baselines` on this benchmark)"]
        parts.append("\n".join(lines))
    if published:
        parts.append(_published_markdown(list(published)))
    return "\n\n".join(parts) or "(empty leaderboard)"


def _published_markdown(published: list[dict]) -> str:
    lines = [
        "### Published numbers (other test sets and protocols: for reference, not ranked with the rows above)",
        "",
        "Copied as printed from each paper's table; each paper chose its own test clips, crops, resolution and "
        "evaluator versions, so these numbers compare neither with each other across tables nor with ours.",
    ]
    for (paper, table, bench, protocol, source), group in _published_groups(published).items():
        cols = _published_columns(group)
        lines += [
            "",
            f"**{paper}, {table}** — {bench}. Protocol: {protocol} [source]({source})",
            "",
            "| method | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        lines += [f"| {_method(p)} | " + " | ".join(str(p["values"].get(c, "–")) for c in cols) + " |" for p in group]
    return "\n".join(lines)


_SCRIPT = """<script>
document.querySelectorAll('table.ranked th').forEach((th, i) => th.onclick = () => {
  const body = th.closest('table').tBodies[0], rows = [...body.rows];
  const asc = th.dataset.order !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.order);
  th.dataset.order = asc ? 'asc' : 'desc';
  const val = r => { const t = r.cells[i].dataset.v ?? r.cells[i].innerText, n = parseFloat(t);
                     return isNaN(n) ? (i ? null : t) : n; };
  rows.sort((a, b) => { const x = val(a), y = val(b);
    if (x === null || y === null) return (x === null) - (y === null);  // no value: always last
    return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
});</script>"""

_STYLE = (
    "body{font-family:sans-serif;margin:2em} td,th{padding:3px 8px;text-align:right;white-space:nowrap} td:first-child,"
    "th:first-child{text-align:left} th{cursor:pointer;background:#eee} tr.floor{background:#fde2e1}"
    " tr.ceiling{background:#dff3e3} tr.baseline{background:#f3f1dc} tr.external{background:#e4ecf7}"
    " th[data-order=asc]::after{content:' ▲'} th[data-order=desc]::after{content:' ▼'}"
    " table.published th{cursor:default} .note{color:#555;font-size:90%}"
)


def _link(row: dict, page: Path) -> str:
    name = html.escape(_name(row))
    if not row.get("report"):
        return name
    rel = os.path.relpath(Path(row["report"]).resolve(), page.resolve().parent)
    return f"<a href='{html.escape(Path(rel).as_posix())}'>{name}</a>"


def write_html(rows: list[dict], path: Path, published: list[dict] = ()) -> Path:
    """A self-contained page: a sortable table per group (click a header; again to reverse),
    floor and ceiling coloured, each row linking to its report; published numbers apart."""
    better, tables = directions(), []
    for key, group in groups(rows).items():
        cols = _columns(group)
        head = "<th>name</th><th>items</th>" + "".join(
            f"<th title='{'higher' if better.get(c) else 'lower' if better.get(c) is False else 'no'} is better'>"
            f"{html.escape(c)} {ARROWS[better.get(c)]}</th>"
            for c in cols
        )
        body = "".join(
            f"<tr class='{html.escape(r['kind'])}'><td>{_link(r, path)}</td><td data-v='{r['items']}'>"
            f"{r['items']}/{r['of']}</td>" + "".join(f"<td>{_fmt(r['metrics'].get(c))}</td>" for c in cols) + "</tr>"
            for r in group
        )
        tables.append(
            f"<h2>{html.escape(_title(key))}</h2><table class='ranked'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    if published:
        tables.append(_published_html(list(published)))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>vlogger leaderboard</title><style>{_STYLE}</style>"
        "</head><body><h1>Leaderboard</h1><p class='note'>↑ higher is better, ↓ lower is better; "
        "<span style='background:#fde2e1'>floor</span> and <span style='background:#dff3e3'>ceiling</span> "
        f"bracket every model. Click a column to sort.</p>{''.join(tables)}{_SCRIPT}</body></html>"
    )
    return write_atomic(path, page)


def _published_html(published: list[dict]) -> str:
    parts = [
        "<h2>Published numbers</h2><p class='note'>Other test sets and protocols: for reference, never ranked with "
        "the measured rows. Copied as printed from each paper's table; each paper chose its own clips, crops, "
        "resolution and evaluator versions.</p>"
    ]
    for (paper, table, bench, protocol, source), group in _published_groups(published).items():
        cols = _published_columns(group)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["method", *cols])
        body = "".join(
            f"<tr><td>{html.escape(_method(p))}</td>"
            + "".join(f"<td>{html.escape(str(p['values'].get(c, '–')))}</td>" for c in cols)
            + "</tr>"
            for p in group
        )
        parts.append(
            f"<h3>{html.escape(paper)}, {html.escape(table)} — {html.escape(bench)}</h3><p class='note'>Protocol: "
            f"{html.escape(protocol)} <a href='{html.escape(source, quote=True)}'>source</a></p>"
            f"<table class='published'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    return "".join(parts)


def log_wandb(rows: list[dict], project: str, folder: Path) -> None:
    """The board as a W&B table (offline unless WANDB_MODE says otherwise), its run files in
    `folder`/wandb (beside the board: W&B's own default is the working directory)."""
    import wandb

    cols = _columns(rows)
    table = wandb.Table(columns=["name", "kind", "benchmark", "conditions", "items", *cols])
    for r in rows:
        table.add_data(
            r["name"],
            r["kind"],
            r["benchmark"],
            json.dumps(r["conditions"]),
            r["items"],
            *[r["metrics"].get(c) for c in cols],
        )
    mode = os.environ.get("WANDB_MODE", "offline")
    with wandb.init(project=project, job_type="leaderboard", mode=mode, dir=str(folder)) as run:
        run.log({"leaderboard": table})
