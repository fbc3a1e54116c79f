"""A leaderboard of evaluated checkpoints: a JSON file of entries, shown as markdown and a
sortable HTML table. Entries are grouped by protocol version and by what else changes the numbers
(2.0: the LSE mode; 1.0: the identity backbone): numbers from different groups are never put in
one table. 1.0 entries stay readable in tables of their own."""

from __future__ import annotations

import datetime
import html
import json
from pathlib import Path

from vlogger.evaluation.collection import directions

ARROWS = {True: " ↑", False: " ↓", None: ""}  # higher is better, lower is, neither (or a column no metric reports)


def load(board: Path) -> list[dict]:
    return json.loads(board.read_text()) if board.exists() else []


def add(board: Path, result_path: Path, name: str) -> dict:
    """Append (or replace, same name and group) one evaluation's aggregate."""
    result = json.loads(result_path.read_text())
    entry = {
        "name": name,
        "protocol_version": result["protocol_version"],
        "lse_mode": result.get("lse_mode"),  # 2.0
        "identity_backbone": result.get("identity_backbone"),  # 1.0
        "videos": result["scored"],
        "added": datetime.date.today().isoformat(),
        "metrics": result["aggregate"],
    }
    key = (name, group_title(entry))
    entries = [e for e in load(board) if (e["name"], group_title(e)) != key] + [entry]
    board.parent.mkdir(parents=True, exist_ok=True)
    board.write_text(json.dumps(entries, indent=1))
    return entry


def group_title(e: dict) -> str:
    """What an entry's numbers are comparable under: the protocol, and its LSE mode or (1.0) identity backbone."""
    if e.get("lse_mode") is not None:
        return f"protocol {e['protocol_version']}, LSE mode {e['lse_mode']}"
    return f"protocol {e['protocol_version']}, identity backbone {e.get('identity_backbone')}"


def groups(entries: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in entries:
        out.setdefault(group_title(e), []).append(e)
    return out


def _columns(rows: list[dict]) -> list[str]:
    return sorted({k for e in rows for k in e["metrics"]})


def markdown(entries: list[dict]) -> str:
    """One table per protocol and backbone; each column's arrow is its metric's `higher_is_better`."""
    better, parts = directions(), []
    for title, rows in groups(entries).items():
        cols = _columns(rows)
        head = "| name | videos | " + " | ".join(c + ARROWS[better.get(c)] for c in cols) + " |"
        lines = [f"### {title}", "", head, "|---" * (len(cols) + 2) + "|"]
        for e in rows:
            vals = " | ".join(f"{e['metrics'][c]:.4g}" if c in e["metrics"] else "–" for c in cols)
            lines.append(f"| {e['name']} | {e['videos']} | {vals} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "(empty leaderboard)"


def write_html(entries: list[dict], path: Path) -> Path:
    """Tables that sort by a column when its header is clicked (a few lines of inline JS)."""
    tables = []
    for title, rows in groups(entries).items():
        cols = _columns(rows)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["name", "videos", *cols])
        body = "".join(
            "<tr><td>"
            + html.escape(e["name"])
            + f"</td><td>{e['videos']}</td>"
            + "".join(f"<td>{e['metrics'].get(c, float('nan')):.4g}</td>" for c in cols)
            + "</tr>"
            for e in rows
        )
        tables.append(
            f"<h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    script = """<script>
document.querySelectorAll('th').forEach((th, i) => th.onclick = () => {
  const body = th.closest('table').tBodies[0], rows = [...body.rows], asc = th.dataset.asc !== '1';
  th.dataset.asc = asc ? '1' : '0';
  const val = r => { const t = r.cells[i].innerText, n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => (val(a) > val(b) ? 1 : -1) * (asc ? 1 : -1)).forEach(r => body.appendChild(r));
});</script>"""
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>vlogger leaderboard</title><style>"
        "body{font-family:sans-serif;margin:2em} td,th{padding:3px 8px} th{cursor:pointer;background:#eee}"
        f"</style></head><body><h1>Leaderboard</h1>{''.join(tables)}{script}</body></html>"
    )
    return path


def log_wandb(entries: list[dict], project: str, folder: Path) -> None:
    """The board as a W&B table (offline unless the user has set W&B up), its run files in
    `folder`/wandb (beside the board: W&B's own default is the working directory)."""
    import wandb

    cols = sorted({k for e in entries for k in e["metrics"]})
    table = wandb.Table(columns=["name", "group", *cols])
    for e in entries:
        table.add_data(e["name"], group_title(e), *[e["metrics"].get(c) for c in cols])
    with wandb.init(project=project, job_type="leaderboard", dir=str(folder)) as run:
        run.log({"leaderboard": table})
