"""A small synthetic SMPL-X model in the official .npz format, for tests without the real files.

The real SMPLX_<GENDER>.npz (licence-gated) holds, with V = 10 475 vertices and F = 20 908
triangles: v_template (V, 3), f (F, 3), shapedirs (V, 3, 400: 300 shape + 100 expression),
posedirs (V, 3, 486), J_regressor (55, V), weights (V, 55), kintree_table (2, 55),
hands_componentsl/r (45, 45), hands_meanl/r (45,), lmk_faces_idx (51,), lmk_bary_coords
(51, 3), dynamic_lmk_faces_idx (79, 17), dynamic_lmk_bary_coords (79, 17, 3), vt, ft.
This writes every one of those keys with those shapes except for the vertex and triangle
counts, so `smplx.create` reads it exactly as it reads the real file.

The body is one octahedron per joint (the regressor averages its six vertices, so joints sit
where they should), plus a curved face patch in front of the head (skinned to head and jaw)
that carries the 51 static landmarks in an iBUG-68 layout. Shape directions are whole-body
stretches (x, y, z scalings and an x-y shear, traceless: under a weak-perspective camera a
uniform scaling or a depth shear would look exactly like camera scale or head rotation)
plus face bumps; expression directions are bumps at the facial features; pose correctives
small noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
PARENTS += [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]  # left fingers
PARENTS += [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]  # right fingers

# rest joints in metres (y up, x towards the person's left, z out of the face), right side mirrored
_LEFT_BODY = {  # joint: position, for joints with a mirrored right partner at index + 1
    1: (0.06, -0.09, 0.0), 4: (0.10, -0.47, 0.0), 7: (0.09, -0.87, -0.04), 10: (0.11, -0.93, 0.08),
    13: (0.08, 0.43, 0.0), 16: (0.18, 0.46, -0.01), 18: (0.44, 0.44, -0.03), 20: (0.69, 0.44, -0.03),
    23: (0.032, 0.67, 0.10),
}  # fmt: skip
_CENTRE = {0: (0, 0, 0), 3: (0, 0.11, -0.02), 6: (0, 0.25, 0), 9: (0, 0.31, 0.02), 12: (0, 0.52, -0.01)}
_CENTRE |= {15: (0, 0.60, 0.03), 22: (0, 0.58, 0.06)}
_FINGER_OFFSETS = [(0.09, 0, 0.025), (0.095, 0, 0.0), (0.08, 0, -0.04), (0.09, 0, -0.02), (0.03, -0.02, 0.04)]

FACE_CENTRE = np.array([0.0, 0.63, 0.03])
FACE_X, FACE_Y = (-0.075, 0.075, 15), (-0.11, 0.07, 19)  # patch extent (local, metres) and grid size
MOUTH_Y = -0.05  # local height of the lip line: below it the patch follows the jaw

# iBUG-68 points 17..67 on the face patch, local (x, y) metres; person's right is -x
_RIGHT_BROW = [(-0.060, 0.040), (-0.048, 0.048), (-0.034, 0.050), (-0.020, 0.048), (-0.008, 0.043)]
_RIGHT_EYE = [(-0.045, 0.022), (-0.036, 0.028), (-0.024, 0.028), (-0.015, 0.021), (-0.024, 0.016), (-0.036, 0.016)]
IBUG_LAYOUT = np.array(
    _RIGHT_BROW
    + [(-x, y) for x, y in reversed(_RIGHT_BROW)]
    + [(0, 0.025), (0, 0.010), (0, -0.005), (0, -0.020)]
    + [(-0.015, -0.030), (-0.008, -0.033), (0, -0.035), (0.008, -0.033), (0.015, -0.030)]
    + _RIGHT_EYE
    + [(-x, y) for x, y in [_RIGHT_EYE[i] for i in (3, 2, 1, 0, 5, 4)]]
    + [(-0.025, -0.052), (-0.016, -0.045), (-0.006, -0.042), (0, -0.043), (0.006, -0.042), (0.016, -0.045)]
    + [(0.025, -0.052), (0.016, -0.060), (0.007, -0.064), (0, -0.065), (-0.007, -0.064), (-0.016, -0.060)]
    + [(-0.019, -0.052), (-0.007, -0.049), (0, -0.049), (0.007, -0.049), (0.019, -0.052)]
    + [(0.007, -0.055), (0, -0.055), (-0.007, -0.055)]
)


def rest_joints() -> np.ndarray:
    """(55, 3) rest joint positions of the synthetic skeleton."""
    joints = np.zeros((55, 3))
    for j, p in _CENTRE.items():
        joints[j] = p
    for j, (x, y, z) in _LEFT_BODY.items():
        joints[j], joints[j + 1] = (x, y, z), (-x, y, z)
    for side, wrist, first in ((1, 20, 25), (-1, 21, 40)):
        for f, (dx, dy, dz) in enumerate(_FINGER_OFFSETS):
            for k in range(3):
                reach = dx + 0.03 * k
                joints[first + 3 * f + k] = joints[wrist] + (side * reach, dy, dz)
    return joints


def _octahedra(centres: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Six vertices around each centre and eight outward-facing triangles each."""
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    verts = (centres[:, None] + radii[:, None, None] * axes).reshape(-1, 3)
    tris = []
    for sx, sy, sz in np.ndindex(2, 2, 2):
        a, b, c = 3 * sx, 1 + 3 * sy, 2 + 3 * sz  # +x is 0, -x is 3, ...
        tris.append((a, b, c) if (sx + sy + sz) % 2 == 0 else (a, c, b))
    faces = (np.arange(len(centres))[:, None, None] * 6 + np.array(tris)).reshape(-1, 3)
    return verts, faces


def _face_patch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid vertices (local x, y), their 3D positions, and CCW (outward, +z) triangles."""
    xs, ys = np.linspace(*FACE_X), np.linspace(*FACE_Y)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    local = np.stack([gx.ravel(), gy.ravel()], -1)
    z = 0.085 * np.sqrt(np.clip(1 - (gx / 0.1) ** 2 - (gy / 0.16) ** 2, 0, None))
    z += 0.025 * np.exp(-((gx / 0.014) ** 2) - ((gy + 0.01) / 0.03) ** 2)  # nose
    pos = FACE_CENTRE + np.stack([gx.ravel(), gy.ravel(), z.ravel()], -1)
    ny = len(ys)
    tris = []
    for i in range(len(xs) - 1):
        for j in range(ny - 1):
            a, b, c, d = i * ny + j, (i + 1) * ny + j, (i + 1) * ny + j + 1, i * ny + j + 1
            tris += [(a, b, c), (a, c, d)]
    return local, pos, np.array(tris)


def _locate(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patch triangle index (into `_face_patch`'s triangles) and barycentric weights of local points."""
    (x0, x1, nx), (y0, y1, ny) = FACE_X, FACE_Y
    u = (points[:, 0] - x0) / (x1 - x0) * (nx - 1)
    v = (points[:, 1] - y0) / (y1 - y0) * (ny - 1)
    i, j = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - i, v - j
    lower = fu >= fv  # triangle (a, b, c) of the cell, else (a, c, d)
    tri = 2 * (i * (ny - 1) + j) + (~lower)
    bary = np.where(lower[:, None], np.stack([1 - fu, fu - fv, fv], -1), np.stack([1 - fv, fu, fv - fu], -1))
    return tri, bary


def _jaw_weight(local_y: np.ndarray) -> np.ndarray:
    """Skinning weight of the jaw on the face patch: 0 above the lip line, 1 a centimetre below."""
    return np.clip((MOUTH_Y - local_y) / 0.01 + 0.5, 0, 1)


def _face_bumps(
    rng: np.random.Generator, verts: np.ndarray, on_face: np.ndarray, centres: np.ndarray, width: float
) -> np.ndarray:
    """(V, 3) displacement: random Gaussian bumps at local face positions `centres` (K, 2)
    whose frontal (x, y) part is orthogonal to what a small rotation, shift or scaling of the
    head, or a small jaw rotation, does in the image (the real model's components are learnt
    from aligned scans with the jaw articulated, so they carry little of either)."""
    bumps = np.exp(-((verts[on_face, None, :2] - FACE_CENTRE[:2] - centres) ** 2).sum(-1) / width**2)
    field = bumps @ rng.normal(scale=0.004, size=(len(centres), 3))
    x, y, z = (verts[on_face] - FACE_CENTRE).T
    one, zero = np.ones_like(x), np.zeros_like(x)
    motions = [(zero, -z), (z, zero), (-y, x), (one, zero), (zero, one), (x, y)]  # image-plane effects
    jx, jy, jz = (verts[on_face] - rest_joints()[22]).T
    jaw = _jaw_weight(y)
    motions += [(zero, -jaw * jz), (jaw * jz, zero), (-jaw * jy, jaw * jx)]  # ... and of the jaw
    basis = np.linalg.qr(np.stack([np.column_stack(m).ravel() for m in motions], 1))[0]
    flat = field[:, :2].ravel()
    field[:, :2] = (flat - basis @ (basis.T @ flat)).reshape(-1, 2)
    out = np.zeros_like(verts)
    out[on_face] = field
    return out


def synthetic_smplx_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Every array of an SMPLX_<GENDER>.npz for the synthetic body."""
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    radii = np.full(55, 0.03)
    radii[25:] = 0.008
    radii[[22, 23, 24]] = [0.015, 0.012, 0.012]
    radii[15] = 0.05
    body_v, body_f = _octahedra(joints, radii)
    local, face_v, face_f = _face_patch()
    n_body = len(body_v)
    verts = np.concatenate([body_v, face_v])
    faces = np.concatenate([body_f, face_f + n_body])
    n = len(verts)

    weights = np.zeros((n, 55))
    weights[np.arange(n_body), np.arange(n_body) // 6] = 1
    jaw = _jaw_weight(local[:, 1])
    weights[n_body:, 22], weights[n_body:, 15] = jaw, 1 - jaw
    regressor = np.zeros((55, n))
    regressor[np.arange(n_body) // 6, np.arange(n_body)] = 1 / 6

    on_face = np.arange(n) >= n_body
    shapedirs = np.zeros((n, 3, 400))
    for k in range(300):
        size = 1.0 if k < 10 else 0.1
        stretch = np.diag(rng.normal(size=3))
        stretch[0, 1] = stretch[1, 0] = rng.normal()
        stretch -= np.trace(stretch) / 3 * np.eye(3)
        anywhere = np.column_stack([rng.uniform(-0.05, 0.05, 2), rng.uniform(-0.08, 0.05, 2)])
        shapedirs[:, :, k] = 0.01 * size * verts @ stretch + size * _face_bumps(rng, verts, on_face, anywhere, 0.02)
    for k in range(300, 400):  # expressions move the features: mouth, eyes, brows, nose
        features = IBUG_LAYOUT[rng.choice(len(IBUG_LAYOUT), 2)]
        shapedirs[:, :, k] = _face_bumps(rng, verts, on_face, features, 0.012)

    lmk_tri, lmk_bary = _locate(IBUG_LAYOUT)
    angles = np.linspace(0.15, np.pi - 0.15, 17)
    contour = np.column_stack([-0.068 * np.cos(angles), -0.035 - 0.07 * np.sin(angles)])
    dyn_tri, dyn_bary = _locate(contour)

    components = [np.linalg.qr(rng.normal(size=(45, 45)))[0] for _ in range(2)]
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": rng.normal(scale=2e-4, size=(n, 3, 486)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack([np.array(PARENTS), np.arange(55)]).astype(np.int64),
        "hands_componentsl": components[0],
        "hands_componentsr": components[1],
        "hands_meanl": rng.normal(scale=0.1, size=45),
        "hands_meanr": rng.normal(scale=0.1, size=45),
        "lmk_faces_idx": (lmk_tri + len(body_f)).astype(np.int64),
        "lmk_bary_coords": lmk_bary,
        "dynamic_lmk_faces_idx": np.tile(dyn_tri + len(body_f), (79, 1)).astype(np.int64),
        "dynamic_lmk_bary_coords": np.tile(dyn_bary, (79, 1, 1)),
        "vt": np.column_stack([verts[:, 0] + 0.5, verts[:, 1] / 2 + 0.5]),
        "ft": faces.astype(np.uint32),
    }


def write_synthetic_smplx(folder: str | Path, gender: str = "neutral", seed: int = 0) -> Path:
    """Write `folder/smplx/SMPLX_<GENDER>.npz` (the layout `smplx.create` expects); returns the file."""
    path = Path(folder) / "smplx" / f"SMPLX_{gender.upper()}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **synthetic_smplx_arrays(seed))
    return path
