"""The face-mesh triangles built from mediapipe's edge list: a closed, oriented, labelled mesh."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vlogger.body.facemesh import FaceBasis
from vlogger.body.topology import BROWS, EYES, INNER_MOUTH, LIPS, REGIONS, SKIN, facemesh_topology
from vlogger.core import landmarks

c = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")


@pytest.fixture(scope="module")
def topo():
    return facemesh_topology()


def _undirected(faces: np.ndarray) -> Counter:
    return Counter(tuple(sorted(e)) for t in faces.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])))


def test_closed_manifold_with_only_the_face_oval_open(topo):
    faces = topo.faces
    assert faces.dtype == np.int64 and faces.shape[1] == 3 and topo.labels.shape == (len(faces),)
    assert all(len(set(t)) == 3 for t in faces.tolist())
    assert len({tuple(sorted(t)) for t in faces.tolist()}) == len(faces), "duplicate triangle"
    use = _undirected(faces)
    assert max(use.values()) <= 2, [e for e, n in use.items() if n > 2]
    boundary = {e for e, n in use.items() if n == 1}
    assert boundary == {tuple(sorted(e)) for e in c.FACEMESH_FACE_OVAL}
    # every tessellation edge is kept; the fills add edges only across the holes
    assert {tuple(sorted(e)) for e in c.FACEMESH_TESSELATION} <= set(use)
    assert set(np.unique(faces).tolist()) == set(range(468))


def test_consistent_orientation_facing_the_camera(topo):
    directed = Counter((t[i], t[(i + 1) % 3]) for t in topo.faces.tolist() for i in range(3))
    assert max(directed.values()) == 1, "two triangles walk an edge the same way: winding flips"
    # on the frontal mean face, the normal (v1 - v0) x (v2 - v0) points to the camera (-z)
    mean = FaceBasis.load().mean
    v = mean[topo.faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    skin = topo.labels == SKIN
    assert (n[skin, 2] < 0).mean() > 0.9


def test_regions(topo):
    labels, faces = topo.labels, topo.faces
    assert len(REGIONS) == 7 and REGIONS[INNER_MOUTH] == "inner_mouth"
    counts = np.bincount(labels, minlength=len(REGIONS))
    assert counts[0] == 0 and counts[6] == 0, "background and body are not face-mesh regions"
    assert all(counts[k] > 0 for k in (SKIN, LIPS, INNER_MOUTH, EYES, BROWS))
    outer = set(landmarks.FORMATS["mediapipe478"]["lips"])
    inner = _verts(c.FACEMESH_LIPS) - outer
    eyes = _verts(c.FACEMESH_LEFT_EYE) | _verts(c.FACEMESH_RIGHT_EYE)
    brows = _verts(c.FACEMESH_LEFT_EYEBROW) | _verts(c.FACEMESH_RIGHT_EYEBROW)
    # the fills span exactly their hole loops
    assert _verts(faces[labels == INNER_MOUTH]) == inner and {13, 14, 78, 308} <= inner
    assert _verts(faces[labels == EYES]) == eyes
    # the lips are the band between both contours: they meet the skin only on the outer one
    # and the inner mouth only on the inner one
    lip = _verts(faces[labels == LIPS])
    assert outer | inner <= lip
    assert lip & _verts(faces[labels == SKIN]) == outer
    # each brow is one band between its upper and lower line (5 + 5 points, 8 triangles)
    assert _verts(faces[labels == BROWS]) == brows and counts[BROWS] == 16


def _verts(x) -> set[int]:
    return {int(v) for e in x for v in e}
