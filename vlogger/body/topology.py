"""Triangles and region labels of mediapipe's 478-point face mesh, for the control renderer.

mediapipe ships its tessellation only as an edge set; the triangles are its 3-cliques less two
spurious ones. The mesh has holes at the mouth and eyes; they are closed here (no new
vertices) so the semantic map has an inner mouth and eyes. Regions are found purely
topologically (components of the triangle graph cut along mediapipe's lip and brow contours),
so no reference geometry is needed and the result is the same for every face.

Orientation: front-facing triangles have their normal `(v1 - v0) x (v2 - v0)` pointing to the
camera (negative z in the image convention of `vlogger.body.params`).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

REGIONS = ("background", "skin", "lips", "inner_mouth", "eyes", "brows", "body")
SKIN, LIPS, INNER_MOUTH, EYES, BROWS, BODY = 1, 2, 3, 4, 5, 6
# the renderer's regions when params carry hands or eyes (data spec parts beyond face and body)
FULL_REGIONS = (*REGIONS, "iris", "left_hand", "right_hand")
IRIS, LEFT_HAND, RIGHT_HAND = 7, 8, 9

N_MESH_VERTICES = 468  # 468..477 are the iris points, not part of the tessellation

# corner pairs where each hole loop is split into its upper and lower chain before stitching
MOUTH_CORNERS = (78, 308)
EYE_CORNERS = ((33, 133), (263, 362))

Edge = tuple[int, int]


@dataclass(frozen=True)
class Topology:
    """faces (F, 3) int64 into the 478 landmarks, consistently oriented; labels (F,) into REGIONS."""

    faces: np.ndarray
    labels: np.ndarray


def facemesh_topology() -> Topology:
    """The closed, labelled face-mesh triangles (needs mediapipe; store the result, not the call)."""
    from mediapipe.python.solutions import face_mesh_connections as c

    directed = {(int(a), int(b)) for a, b in c.FACEMESH_TESSELATION}
    mesh = _clique_triangles({_key(e) for e in directed})
    boundary = [e for e in directed if (e[1], e[0]) not in directed]
    loops = _loops(boundary)
    oval = _edges_of(c.FACEMESH_FACE_OVAL)

    holes = {}
    for corners, contour in [
        (MOUTH_CORNERS, c.FACEMESH_LIPS),
        (EYE_CORNERS[0], c.FACEMESH_RIGHT_EYE),
        (EYE_CORNERS[1], c.FACEMESH_LEFT_EYE),
    ]:
        loop = next(lp for lp in loops if corners[0] in lp)
        if not set(loop) <= {v for e in contour for v in e}:
            raise ValueError(f"mesh hole through {corners[0]} leaves its contour: {sorted(set(loop))}")
        holes[corners] = loop
    fills = [(_stitch(*_split(loop, *corners)), INNER_MOUTH if corners == MOUTH_CORNERS else EYES)
             for corners, loop in holes.items()]  # fmt: skip

    faces = mesh + [t for tris, _ in fills for t in tris]
    labels = np.full(len(faces), SKIN, np.int64)
    n_mesh = len(mesh)
    mouth = holes[MOUTH_CORNERS]
    outer_lip = _edges_of(c.FACEMESH_LIPS) - {_key(e) for e in zip(mouth, mouth[1:] + mouth[:1], strict=True)}
    labels[:n_mesh][_inside(mesh, outer_lip, oval)] = LIPS
    for brow in (c.FACEMESH_RIGHT_EYEBROW, c.FACEMESH_LEFT_EYEBROW):
        labels[:n_mesh][_inside(mesh, _closed_band(brow, {_key(e) for e in directed}), oval)] = BROWS
    start = n_mesh
    for tris, label in fills:
        labels[start : start + len(tris)] = label
        start += len(tris)

    seed = next(e for e in boundary if _key(e) in oval)
    return Topology(np.asarray(_orient(faces, seed), np.int64), labels)


def _key(e: Edge) -> Edge:
    return (e[0], e[1]) if e[0] < e[1] else (e[1], e[0])


def _edges_of(connections) -> set[Edge]:
    return {_key((int(a), int(b))) for a, b in connections}


def _tri_edges(t) -> list[Edge]:
    return [_key((t[0], t[1])), _key((t[1], t[2])), _key((t[2], t[0]))]


def _clique_triangles(edges: set[Edge]) -> list[tuple[int, int, int]]:
    """3-cliques of the edge graph, dropping cliques whose every edge is already shared thrice
    (a triangle of real triangles' edges that is no face of its own)."""
    adj = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = sorted({tuple(sorted((a, b, x))) for a, b in edges for x in adj[a] & adj[b]})
    use = Counter(e for t in tris for e in _tri_edges(t))
    for t in list(tris):
        if all(use[e] > 2 for e in _tri_edges(t)):  # re-checked: dropping one may save another
            use.subtract(_tri_edges(t))
            tris.remove(t)
    return tris


def _loops(edges: list[Edge]) -> list[list[int]]:
    """Boundary edges (each vertex on one loop) -> vertex cycles."""
    nxt = defaultdict(list)
    for a, b in edges:
        nxt[a].append(b)
        nxt[b].append(a)
    seen: set[int] = set()
    loops = []
    for s in sorted(nxt):
        if s in seen:
            continue
        loop, prev, v = [s], None, s
        while True:
            seen.add(v)
            w = next(u for u in nxt[v] if u != prev)
            if w == s:
                break
            loop.append(w)
            prev, v = v, w
        loops.append(loop)
    return loops


def _split(loop: list[int], p: int, q: int) -> tuple[list[int], list[int]]:
    """The two chains of a cycle from corner p to corner q."""
    i = loop.index(p)
    cyc = loop[i:] + loop[:i]
    j = cyc.index(q)
    return cyc[: j + 1], [p, *cyc[j:][::-1]]


def _stitch(a: list[int], b: list[int]) -> list[tuple[int, int, int]]:
    """Triangulate the polygon between two chains sharing both ends, zig-zagging across it."""
    m, n = len(a) - 1, len(b) - 1
    i = j = 0
    tris = []
    while i < m or j < n:
        if j == n or (i < m and (i + 1) / m <= (j + 1) / n):
            t = (a[i], a[i + 1], b[j])
            i += 1
        else:
            t = (a[i], b[j + 1], b[j])
            j += 1
        if len(set(t)) == 3:
            tris.append(t)
    return tris


def _closed_band(brow, mesh_edges: set[Edge]) -> set[Edge]:
    """A brow's upper and lower lines plus the two mesh edges joining their ends."""
    edges = _edges_of(brow)
    degree = Counter(v for e in edges for v in e)
    ends = [v for v, d in degree.items() if d == 1]
    closing = {_key(e) for e in itertools.combinations(ends, 2) if _key(e) in mesh_edges}
    if len(closing) != 2:
        raise ValueError(f"brow contour {sorted(edges)} does not close into a band with mesh edges")
    return edges | closing


def _inside(tris: list[tuple[int, int, int]], cut: set[Edge], outside: set[Edge]) -> np.ndarray:
    """Triangles cut off by the closed contour `cut` from those touching the `outside` edges."""
    by_edge = defaultdict(list)
    for k, t in enumerate(tris):
        for e in _tri_edges(t):
            by_edge[e].append(k)
    reached = np.zeros(len(tris), bool)
    stack = [k for e in outside for k in by_edge[e]]
    reached[stack] = True
    while stack:
        k = stack.pop()
        for e in _tri_edges(tris[k]):
            if e in cut:
                continue
            for n in by_edge[e]:
                if not reached[n]:
                    reached[n] = True
                    stack.append(n)
    return ~reached


def _orient(tris: list[tuple[int, int, int]], seed: Edge) -> list[tuple[int, int, int]]:
    """Consistent winding by propagation, fixed by one directed boundary edge of mediapipe's
    (whose triangles face the camera with the normal convention in the module docstring)."""
    by_edge = defaultdict(list)
    for k, t in enumerate(tris):
        for e in _tri_edges(t):
            by_edge[e].append(k)
    out: list[tuple[int, int, int] | None] = [None] * len(tris)
    (k0,) = by_edge[_key(seed)]
    t = tris[k0]
    out[k0] = t if _directed(t, seed) else t[::-1]
    stack = [k0]
    while stack:
        k = stack.pop()
        t = out[k]
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            for n in by_edge[_key((a, b))]:
                if out[n] is None:
                    u = tris[n]
                    out[n] = u[::-1] if _directed(u, (a, b)) else u
                    stack.append(n)
    if any(t is None for t in out):
        raise ValueError("face mesh is not connected")
    return out  # type: ignore[return-value]


def _directed(t, e: Edge) -> bool:
    """Whether triangle t walks edge e in its direction."""
    return any((t[i], t[(i + 1) % 3]) == e for i in range(3))
