"""The stage-2 control renderer: posed mesh -> semantic map, canonical-coordinate map and
warped reference image. Pure torch (CPU or CUDA, same code), batched over frames.

Conventions (see `vlogger.body.params`): vertices in pixels of the image being rendered,
x right, y down, z away from the camera (smaller z wins), orthographic. Pixel (i, j) has its
centre at (x, y) = (j + 0.5, i + 0.5), the convention of `grid_sample(align_corners=False)`.

Rasteriser: every triangle enumerates the pixel centres of its bounding box, padded to a
power of two per axis so triangles of similar size are processed as one tensor; the inside
test uses barycentric edge functions, and the z-buffer is `scatter_reduce(amin)` into one
int64 buffer of keys (depth bits << 32 | triangle id), so equal depths resolve to the lower
triangle id on every device. Per-pixel work after that touches covered pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vlogger.body.hands import HAND_CANONICAL, HAND_FACES, N_VERTS, hand_proxy
from vlogger.body.params import BODY_JOINTS
from vlogger.body.topology import BODY, EYES, FULL_REGIONS, INNER_MOUTH, IRIS, LEFT_HAND, REGIONS, RIGHT_HAND
from vlogger.core.spec import LEGACY_PARTS

_EMPTY = torch.iinfo(torch.int64).max
_ID_BITS = 32
_INSIDE_EPS = 1e-5  # barycentric slack so pixel centres on shared edges are never dropped

# Depth offsets as fractions of the face's image extent (max of its x and y range).
INNER_MOUTH_DEPTH = 0.05  # inner mouth sits behind the lips wherever they overlap
BODY_DEPTH = 0.15  # body proxy starts this far behind the face's deepest vertex
WARP_DEPTH_TOLERANCE = 0.03  # a surface point is visible in the reference within this depth
HAND_DEPTH = 1.0  # hands sit this far in front of the face's nearest vertex (they cover face and body)
HAND_Z_RANGE = 0.35  # a hand point's own depth, and one hand's offset from the other, are clipped to this
_TRAILING = 7  # channels after the semantic ones: coords (3) | warped (3) | mask (1)


def control_channels(parts: tuple[str, ...]) -> int:
    """Channels of the `Controls` of a renderer of `parts`: 14 for the face and body, 17 with
    hands or eyes (their semantic classes)."""
    regions = FULL_REGIONS if "hands" in parts or "eyes" in parts else REGIONS
    return len(regions) + _TRAILING


@dataclass
class Fragments:
    """Per pixel: winning triangle (-1 = background), its barycentrics and depth (+inf on
    background; includes any per-triangle depth bias)."""

    face_id: Tensor  # (B, H, W) int64
    bary: Tensor  # (B, H, W, 3)
    depth: Tensor  # (B, H, W)


@dataclass
class Controls:
    """Stage-2 conditioning for B frames at S x S (views into one (B, R + 7, S, S) tensor,
    `stacked`, in the order semantic | coords | warped | mask; R = 7 regions, 10 with hands
    and eyes)."""

    stacked: Tensor

    @property
    def semantic(self) -> Tensor:
        """(B, R, S, S) one-hot over `topology.REGIONS` (`FULL_REGIONS` with hands and eyes)."""
        return self.stacked[:, :-_TRAILING]

    @property
    def coords(self) -> Tensor:
        """(B, 3, S, S) canonical XYZ of the visible surface point in [0, 1], 0 on background."""
        return self.stacked[:, -7:-4]

    @property
    def warped(self) -> Tensor:
        """(B, 3, S, S) reference colours carried to this pose, 0 where the reference never saw
        the point."""
        return self.stacked[:, -4:-1]

    @property
    def mask(self) -> Tensor:
        """(B, 1, S, S) 1 where `warped` carries a reference colour."""
        return self.stacked[:, -1:]

    def paste(self, image: Tensor, feather: float = 0.0) -> Tensor:
        """`image` (B or 1, 3, S, S) in [0, 1] with the warped reference pasted wherever it
        carries a colour: the reconstruction baseline, and where a residual stage 2 starts.

        `feather` > 0 (pixels) fades the paste in over that many pixels inside the mask's edge
        instead of a hard cut: a weakly trained stage 2 keeps whatever edge it starts from, and a
        hard one shows as an oval seam around the face (issue 17's border score)."""
        alpha = self.mask if feather <= 0 else feather_mask(self.mask, feather)
        return alpha * self.warped + (1 - alpha) * image


def feather_mask(mask: Tensor, radius: float) -> Tensor:
    """(B, 1, S, S) binary mask -> weights that rise from 0 at its edge to 1 about `radius`
    pixels inside it (a Gaussian blur of the mask, rescaled so its 0.5 contour becomes 0);
    0 outside the mask, as the hard mask. The frame's own border is not an edge (replicated)."""
    sigma = radius / 2
    half = max(1, int(2 * radius + 0.5))
    x = torch.arange(-half, half + 1, dtype=mask.dtype, device=mask.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    blurred = F.pad(mask, (half, half, half, half), mode="replicate")
    blurred = F.conv2d(blurred, k.view(1, 1, 1, -1))
    blurred = F.conv2d(blurred, k.view(1, 1, -1, 1))
    return ((blurred - 0.5) * 2).clamp(0, 1) * mask


@dataclass
class _Hits:
    """The foreground pixels of a rasterisation, flat (P of them)."""

    pix: Tensor  # (P,) index into B * H * W
    gid: Tensor  # (P,) frame * F + triangle
    bary: Tensor  # (3, P)
    depth: Tensor  # (P,) including the bias


def rasterize(verts: Tensor, faces: Tensor, height: int, width: int, bias: Tensor | None = None) -> Fragments:
    """Z-buffer the triangles `faces` (F, 3) of `verts` (B, V, 3) into an H x W image.

    `bias` (B, F) or (F,) is added to a triangle's depth (pushes regions such as the inner
    mouth behind their neighbours where they overlap). Both windings render.
    """
    b, f = verts.shape[0], faces.shape[0]
    hits = _raster(verts, faces, height, width, bias)
    n = b * height * width
    face_id = torch.full((n,), -1, dtype=torch.int64, device=verts.device).index_put_((hits.pix,), hits.gid % f)
    bary = verts.new_zeros(n, 3).index_put_((hits.pix,), hits.bary.t())
    depth = verts.new_full((n,), torch.inf).index_put_((hits.pix,), hits.depth)
    return Fragments(face_id.view(b, height, width), bary.view(b, height, width, 3), depth.view(b, height, width))


def _raster(verts: Tensor, faces: Tensor, height: int, width: int, bias: Tensor | None) -> _Hits:
    """Rasterise to the list of covered pixels and their winning triangles."""
    b, f = verts.shape[0], faces.shape[0]
    table, nx, ny = _triangle_table(verts, faces, height, width, bias)
    zbuf = torch.full((b * height * width,), _EMPTY, dtype=torch.int64, device=verts.device)
    live = ((nx > 0) & (ny > 0)).nonzero().squeeze(1)
    if live.numel():
        bucket = _pow2_exponent(nx[live]) * 32 + _pow2_exponent(ny[live])
        bucket, order = bucket.sort()
        live = live[order]
        values, counts = torch.unique_consecutive(bucket, return_counts=True)
        for value, idx in zip(values.tolist(), live.split(counts.tolist()), strict=True):
            rows = table.index_select(1, idx)
            _splat(zbuf, rows, nx[idx], ny[idx], idx, 1 << (value // 32), 1 << (value % 32), f, height, width)
    pix = (zbuf != _EMPTY).nonzero().squeeze(1)
    gid = zbuf[pix] & ((1 << _ID_BITS) - 1)
    row = table.index_select(1, gid)
    dx = (pix % width).to(row.dtype) - row[_X0]
    dy = (pix // width % height).to(row.dtype) - row[_Y0]
    bary = (row[0:3] + row[3:6] * dx + row[6:9] * dy).clamp_(0, 1)
    depth = row[9] + row[10] * dx + row[11] * dy + row[12]
    return _Hits(pix, gid, bary, depth)


def body_proxy(joints: Tensor, visible: Tensor, head: Tensor, depth: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Quads for the torso, neck, upper arms and forearms from (B, J, 3) joints (order
    `params.BODY_JOINTS`, pixels) and (B, J) visibility.

    The torso runs from the shoulders to the hips when both are visible, else 1.5 shoulder
    widths down (past a head crop's bottom), so the same body point keeps the same vertex in
    every frame and the warp between two poses stays a correspondence. The neck goes from the
    shoulders up to `head` (B, 3), the centre of the face, which hides its top. Parts whose
    joints are not visible collapse to a point (no pixels). Every part lies behind `depth` (B,),
    arms in front of the torso. Returns verts (B, 24, 3), faces (12, 3), labels (12,) and
    canonical coordinates (24, 3) in [0, 1] (a fixed layout: x across, y down, z per part).
    """
    j = {name: joints[:, i, :2] for i, name in enumerate(BODY_JOINTS)}
    v = {name: visible[:, i] > 0.5 for i, name in enumerate(BODY_JOINTS)}
    ls, rs = j["left_shoulder"], j["right_shoulder"]
    across = ls - rs
    width = across.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    u = across / width
    down = torch.stack([-u[:, 1], u[:, 0]], -1)
    down = torch.where(down[:, 1:] < 0, -down, down)  # perpendicular to the shoulders, towards +y
    top_l, top_r = ls + width * (0.12 * u - 0.1 * down), rs + width * (-0.12 * u - 0.1 * down)
    hips = v["left_hip"] & v["right_hip"]
    bot_l = torch.where(hips[:, None], j["left_hip"] + 0.1 * width * u, ls + width * (1.5 * down - 0.02 * u))
    bot_r = torch.where(hips[:, None], j["right_hip"] - 0.1 * width * u, rs + width * (1.5 * down + 0.02 * u))
    mid = (ls + rs) / 2
    shoulders = v["left_shoulder"] & v["right_shoulder"]
    parts = [
        (torch.stack([top_r, top_l, bot_l, bot_r], 1), shoulders),
        (_limb(mid - 0.1 * width * down, head[:, :2], 0.3 * width), shoulders),
    ]
    for side in ("left", "right"):
        s, e, w = j[f"{side}_shoulder"], j[f"{side}_elbow"], j[f"{side}_wrist"]
        parts.append((_limb(s, e, 0.3 * width), v[f"{side}_shoulder"] & v[f"{side}_elbow"]))
        parts.append((_limb(e, w, 0.22 * width), v[f"{side}_elbow"] & v[f"{side}_wrist"]))
    xy = torch.cat([torch.where(ok[:, None, None], q, q[:, :1]) for q, ok in parts], 1)
    layer = torch.tensor([0.0, 1, 2, 3, 2, 3], device=joints.device).repeat_interleave(4)
    z = depth[:, None] - 0.01 * width * layer  # neck and arms in front of the torso
    verts = torch.cat([xy, z.unsqueeze(-1)], -1)
    labels = torch.full((len(_BODY_FACES),), BODY, dtype=torch.int64, device=joints.device)
    return verts, _BODY_FACES.to(joints.device), labels, _BODY_CANONICAL.to(joints.device)


def _limb(a: Tensor, b: Tensor, width: Tensor) -> Tensor:
    """(B, 4, 2) corners of a quad of the given width around segment a -> b."""
    d = b - a
    n = torch.stack([-d[:, 1], d[:, 0]], -1) / d.norm(dim=-1, keepdim=True).clamp_min(1e-6) * (width / 2)
    return torch.stack([a - n, a + n, b + n, b - n], 1)


def _canonical_layout() -> Tensor:
    """Body proxy corners in a fixed frame (shoulder widths, origin between the shoulders, x to
    the person's left, y down), mapped to [0, 1]; z codes the part."""
    quads = [
        [(-0.62, -0.1), (0.62, -0.1), (0.52, 1.5), (-0.52, 1.5)],  # torso
        [(-0.15, -0.1), (0.15, -0.1), (0.15, -0.9), (-0.15, -0.9)],  # neck
        [(0.65, 0.0), (0.35, 0.0), (0.4, 1.0), (0.7, 1.0)],  # left upper arm
        [(0.66, 1.0), (0.44, 1.0), (0.48, 1.8), (0.7, 1.8)],  # left forearm
        [(-0.35, 0.0), (-0.65, 0.0), (-0.7, 1.0), (-0.4, 1.0)],  # right upper arm
        [(-0.44, 1.0), (-0.66, 1.0), (-0.7, 1.8), (-0.48, 1.8)],  # right forearm
    ]
    xy = torch.tensor(quads).view(24, 2)
    xy = torch.stack([(xy[:, 0] + 1) / 2, (xy[:, 1] + 1) / 3], -1)
    z = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.8, 0.7]).repeat_interleave(4)
    return torch.cat([xy, z[:, None]], -1)


_BODY_CANONICAL = _canonical_layout()
_BODY_FACES = (torch.arange(24).view(6, 1, 4)[:, :, [[0, 1, 2], [0, 2, 3]]]).reshape(12, 3)  # two per quad


@dataclass
class Reference:
    """A reference view, prepared once and reused by every chunk of frames that warps it."""

    atlas: Tensor  # (1, 3, R * (Hr + 1), Wr) the R images stacked, a black row after each
    depth: Tensor  # (R * (Hr + 1) * (Wr + 1),) z-buffer max over each pixel corner's 4 pixels
    table: Tensor  # (11, R * F) per triangle: corner xyz in reference pixels (9), drawable, bias
    tolerance: Tensor  # (R,) depth slack of the visibility test, pixels
    count: int
    height: int
    width: int


@dataclass
class _Pose:
    """One batch's posed inputs beyond the mesh, all in pixels of the image being rendered: body
    joints (B, J, 3) and visibility (B, J); hand points (B, 2, 21, 3) and visibility (B, 2, 21);
    iris centre x, y and radius (B, 2, 3) (`vlogger.body.eyes.iris_pixels`). None = not seen."""

    joints: Tensor | None = None
    visible: Tensor | None = None
    hands: Tensor | None = None
    hand_visible: Tensor | None = None
    iris: Tensor | None = None


class ControlRenderer:
    """Renders `Controls` at `size` px for one mesh topology: faces (F, 3), labels (F,) into
    `topology.REGIONS`, canonical vertex positions (V, 3) (e.g. the model's mean shape; the
    coordinate map shows them normalised to their bounding box). The body proxy (and, when
    `parts` has hands, both hands' proxies) is appended to every mesh (collapsed when not seen),
    so references and frames always share one triangle list. With hands or eyes in `parts` the
    semantic map has `FULL_REGIONS`: each hand its own class, the iris drawn inside the eyes."""

    def __init__(
        self, faces: Tensor, labels: Tensor, canonical: Tensor, size: int, parts: tuple[str, ...] = LEGACY_PARTS
    ):
        faces, labels = torch.as_tensor(faces).long(), torch.as_tensor(labels).long()
        canonical = torch.as_tensor(canonical).float()
        used = canonical[faces.unique()]
        lo, hi = used.amin(0), used.amax(0)
        canonical = ((canonical - lo) / (hi - lo).clamp_min(1e-9)).clamp(0, 1)
        self.size, self.n_verts = size, canonical.shape[0]
        self.hands, self.eyes = "hands" in parts, "eyes" in parts
        self.regions = FULL_REGIONS if self.hands or self.eyes else REGIONS  # control_channels' count
        extra_faces, extra_labels, extra_canonical = [_BODY_FACES + self.n_verts], [BODY], [_BODY_CANONICAL]
        if self.hands:
            start = self.n_verts + len(_BODY_CANONICAL)
            extra_faces += [HAND_FACES + start, HAND_FACES + start + N_VERTS]
            extra_labels += [LEFT_HAND, RIGHT_HAND]
            extra_canonical.append(HAND_CANONICAL)
        extra = [torch.full((len(f),), label) for f, label in zip(extra_faces, extra_labels, strict=True)]
        self.faces = torch.cat([faces, *extra_faces])
        self.labels = torch.cat([labels, *extra])
        self.mouth = torch.cat([labels == INNER_MOUTH, torch.zeros(len(self.faces) - len(faces), dtype=torch.bool)])
        corners = torch.cat([canonical, *extra_canonical])[self.faces].view(-1, 9)
        self.own_table = torch.cat([self.labels[:, None].float(), corners], 1).t().contiguous()  # (10, F)

    def reference(
        self,
        image: Tensor,
        verts: Tensor,
        joints: Tensor | None = None,
        visible: Tensor | None = None,
        *,
        hands: Tensor | None = None,
        hand_visible: Tensor | None = None,
    ) -> Reference:
        """Prepare R reference images (R, 3, Hr, Wr) in [0, 1] with their meshes (R, V, 3),
        optional joints (R, J, 3) / visibility (R, J) and hands (R, 2, 21, 3) / visibility
        (R, 2, 21), all in reference-image pixels."""
        r, _, hr, wr = image.shape
        allv, bias, extent = self._assemble(verts, _Pose(joints, visible, hands, hand_visible))
        faces = self.faces.to(verts.device)
        hits = _raster(allv, faces, hr, wr, bias)
        depth = allv.new_full((r * hr * wr,), 1e9).index_put_((hits.pix,), hits.depth)
        # the deepest of the 4 pixels around each pixel corner: a point counts as seen when it is
        # within tolerance of any pixel it samples, so steep folds (nose wings) do not flicker
        depth = F.max_pool2d(F.pad(depth.view(r, 1, hr, wr), (1, 1, 1, 1), mode="replicate"), 2, stride=1)
        tri = allv[:, faces]  # (R, F, 3, 3)
        e1, e2 = tri[:, :, 1, :2] - tri[:, :, 0, :2], tri[:, :, 2, :2] - tri[:, :, 0, :2]
        drawable = ((e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]).abs() > 1e-6).to(allv.dtype)
        table = torch.cat([tri.flatten(2), drawable[..., None], bias[..., None]], -1).view(-1, 11).t().contiguous()
        atlas = F.pad(image.to(allv.dtype), (0, 0, 0, 1)).transpose(0, 1).reshape(1, 3, r * (hr + 1), wr)
        return Reference(atlas, depth.view(-1), table, WARP_DEPTH_TOLERANCE * extent, r, hr, wr)

    def __call__(
        self,
        verts: Tensor,
        reference: Reference,
        joints: Tensor | None = None,
        visible: Tensor | None = None,
        *,
        hands: Tensor | None = None,
        hand_visible: Tensor | None = None,
        iris: Tensor | None = None,
    ) -> Controls:
        """Controls for B frames: verts (B, V, 3) in pixels of the S x S output, optional body
        joints (B, J, 3) / visibility (B, J), hands (B, 2, 21, 3) / visibility (B, 2, 21) and
        iris (B, 2, 3) in the same pixels; 1 or B references."""
        b, s, dev = verts.shape[0], self.size, verts.device
        if reference.count not in (1, b):
            raise ValueError(f"{reference.count} references for {b} frames: give 1 or one per frame")
        pose = _Pose(joints, visible, hands, hand_visible, iris)
        allv, bias, _ = self._assemble(verts, pose)
        faces = self.faces.to(dev)
        n_faces = faces.shape[0]
        hits = _raster(allv, faces, s, s, bias)
        frame, fid = hits.gid // n_faces, hits.gid % n_faces
        own = self.own_table.to(dev, allv.dtype).index_select(1, fid)
        coords = _blend(hits.bary, own[1:])
        label = own[0]
        if self.eyes and pose.iris is not None:
            label = _draw_iris(label, hits.pix % (s * s), frame, pose.iris.to(allv), s)
        n = len(self.regions) + _TRAILING
        semantic = (label == torch.arange(len(self.regions), device=dev, dtype=own.dtype)[:, None]).to(own.dtype)
        warped, seen = _warp(hits, frame, fid if reference.count == 1 else hits.gid, reference)
        out = allv.new_zeros(b, n, s * s)
        out[:, 0] = 1
        values = torch.cat([semantic, coords, warped, seen[None]])
        channel = torch.arange(n, device=dev)[:, None] * (s * s)
        index = frame * (n * s * s) + hits.pix % (s * s) + channel
        return Controls(out.view(-1).index_put_((index.view(-1),), values.view(-1)).view(b, n, s, s))

    def _assemble(self, verts: Tensor, pose: _Pose):
        """Face mesh + body proxy (+ hands) per frame, per-triangle depth bias and the face's extent."""
        b, dev = verts.shape[0], verts.device
        joints, visible = pose.joints, pose.visible
        if joints is None or visible is None:
            joints = verts.new_zeros(b, len(BODY_JOINTS), 3)
            visible = verts.new_zeros(b, len(BODY_JOINTS))
        joints, visible = joints.to(verts), visible.to(verts)
        lo, hi = verts.amin(1), verts.amax(1)
        extent = (hi - lo)[:, :2].amax(-1)
        back = hi[:, 2] + BODY_DEPTH * extent
        parts = [verts, body_proxy(joints, visible, verts.mean(1), back)[0]]
        if self.hands:
            parts.append(_hands(pose, joints, visible, lo[:, 2], extent))
        bias = self.mouth.to(dev, verts.dtype) * (INNER_MOUTH_DEPTH * extent[:, None])
        return torch.cat(parts, 1), bias, extent


def _hands(pose: _Pose, joints: Tensor, visible: Tensor, front: Tensor, extent: Tensor) -> Tensor:
    """Both hands' proxy vertices in front of the face (`front` its nearest z): each hand's points
    keep their own depth, and the hand whose pose wrist is nearer the camera covers the other."""
    b = joints.shape[0]
    if pose.hands is None or pose.hand_visible is None:
        points, seen = joints.new_zeros(b, 2, 21, 3), joints.new_zeros(b, 2, 21)
    else:
        points, seen = pose.hands.to(joints), pose.hand_visible.to(joints)
    lim = (HAND_Z_RANGE * extent)[:, None, None]
    rel = points[..., 2] - points[..., :1, 2]
    points = torch.cat([points[..., :2], torch.minimum(torch.maximum(rel, -lim), lim)[..., None]], -1)
    wrists = [list(BODY_JOINTS).index(f"{side}_wrist") for side in ("left", "right")]
    wz = joints[:, wrists, 2]
    both = (visible[:, wrists] > 0.5).all(-1, keepdim=True)
    offset = torch.where(both, wz - wz.mean(-1, keepdim=True), 0)
    offset = torch.minimum(torch.maximum(offset, -lim[..., 0]), lim[..., 0])
    return hand_proxy(points, seen, front[:, None] - HAND_DEPTH * extent[:, None] + offset)


def _draw_iris(label: Tensor, pix: Tensor, frame: Tensor, iris: Tensor, size: int) -> Tensor:
    """Eye pixels within an iris disc (iris (B, 2, 3): x, y, radius) relabelled as iris: the
    eye opening clips the disc, so lids cover it and a closed eye shows none."""
    x, y = (pix % size).to(iris.dtype) + 0.5, (pix // size).to(iris.dtype) + 0.5
    c = iris[frame]  # (P, 2, 3)
    inside = ((x[:, None] - c[..., 0]) ** 2 + (y[:, None] - c[..., 1]) ** 2 < c[..., 2] ** 2).any(-1)
    return torch.where((label == EYES) & inside, torch.full_like(label, IRIS), label)


def _blend(bary: Tensor, corners: Tensor) -> Tensor:
    """(3, P) barycentrics and (3 * C, P) corner values -> (C, P) interpolated values."""
    c = corners.shape[0] // 3
    return bary[0] * corners[:c] + bary[1] * corners[c : 2 * c] + bary[2] * corners[2 * c :]


def _warp(hits: _Hits, frame: Tensor, ref_tri: Tensor, ref: Reference) -> tuple[Tensor, Tensor]:
    """Reference colour (3, P) at each surface point's position in the reference, and whether
    the reference saw that point (not hidden in its z-buffer, triangle not degenerate there)."""
    t = ref.table.to(hits.bary.dtype).index_select(1, ref_tri)
    p = _blend(hits.bary, t[:9])  # (3, P) the point in reference pixels
    hr, wr = ref.height, ref.width
    slot = frame if ref.count > 1 else torch.zeros_like(frame)
    x, y = p[0], p[1]
    inside = (x >= 0) & (x <= wr) & (y >= 0) & (y <= hr)
    corner = (y + 0.5).long().clamp(0, hr) * (wr + 1) + (x + 0.5).long().clamp(0, wr)
    zref = ref.depth.to(p.dtype)[slot * ((hr + 1) * (wr + 1)) + corner]
    seen = inside & (t[9] > 0) & (p[2] + t[10] <= zref + ref.tolerance.to(p.dtype)[slot])
    rows = ref.count * (hr + 1)
    grid = torch.stack([x * (2 / wr) - 1, (y + slot * (hr + 1)) * (2 / rows) - 1], -1).view(1, 1, -1, 2)
    colour = F.grid_sample(ref.atlas.to(p.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    seen = seen.to(p.dtype)
    return colour.view(3, -1) * seen, seen


PALETTE = torch.tensor(
    [[0, 0, 0], [224, 172, 138], [200, 40, 60], [70, 20, 50], [240, 240, 250], [90, 60, 30], [60, 110, 200],
     [20, 120, 40], [250, 200, 30], [30, 210, 220]],
    dtype=torch.uint8,
)  # fmt: skip


def controls_to_rgb(controls: Controls) -> Tensor:
    """(B, S, 3S, 3) uint8 strip: semantic (fixed palette) | coords as RGB | warped reference."""
    sem = PALETTE.to(controls.stacked.device)[controls.semantic.argmax(1)]
    rest = [
        (c.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8) for c in (controls.coords, controls.warped)
    ]
    return torch.cat([sem, *rest], 2)


def _pow2_exponent(n: Tensor) -> Tensor:
    """Smallest e with 2**e >= n, for n >= 1."""
    return torch.ceil(torch.log2(n.float())).long().clamp_min(0)


_X0, _Y0 = 13, 14  # rows of the triangle table holding the bbox origin


def _triangle_table(verts: Tensor, faces: Tensor, height: int, width: int, bias: Tensor | None):
    """Per triangle (flattened over the batch, one column each): the affine barycentric and
    depth functions in pixel steps from the first pixel centre of its bbox, that origin, and
    the bbox size in pixels (0 when empty or degenerate)."""
    tri = verts[:, faces]  # (B, F, 3, 3)
    b, f = tri.shape[:2]
    if bias is not None:
        tri = torch.cat([tri[..., :2], tri[..., 2:] + bias.expand(b, f)[..., None, None]], -1)
    finite = tri.isfinite().all(-1).all(-1)  # a lost landmark must not make a huge bbox
    tri = torch.where(finite[..., None, None], tri, 0)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x0 = torch.ceil(x.amin(-1) - 0.5).clamp(0, width)
    x1 = torch.floor(x.amax(-1) - 0.5).clamp(-1, width - 1)
    y0 = torch.ceil(y.amin(-1) - 0.5).clamp(0, height)
    y1 = torch.floor(y.amax(-1) - 0.5).clamp(-1, height - 1)
    lx, ly = x - (x0 + 0.5).unsqueeze(-1), y - (y0 + 0.5).unsqueeze(-1)  # corners from that centre
    i1, i2 = [1, 2, 0], [2, 0, 1]
    area = (lx[..., 1] - lx[..., 0]) * (ly[..., 2] - ly[..., 0]) - (lx[..., 2] - lx[..., 0]) * (ly[..., 1] - ly[..., 0])
    ok = (area.abs() > 1e-8) & finite
    inv = (torch.where(ok, 1 / torch.where(ok, area, 1), 0)).unsqueeze(-1)
    # w_k(dx, dy) = cross(v_k1 - p, v_k2 - p) / area, affine in the pixel offset (dx, dy)
    w0 = (lx[..., i1] * ly[..., i2] - lx[..., i2] * ly[..., i1]) * inv
    wx = (ly[..., i1] - ly[..., i2]) * inv
    wy = (lx[..., i2] - lx[..., i1]) * inv
    zmin = z.amin((1, 2), keepdim=True)  # per frame, so a frame renders the same in any batch
    z = z - zmin
    zs = [(w * z).sum(-1, keepdim=True) for w in (w0, wx, wy)]
    table = torch.cat([w0, wx, wy, *zs, zmin.expand(b, f, 1), x0[..., None], y0[..., None]], -1)
    nx = torch.where(ok, x1 - x0 + 1, 0).long().view(-1)
    ny = torch.where(ok, y1 - y0 + 1, 0).long().view(-1)
    return table.view(b * f, 15).t().contiguous(), nx, ny


def _splat(zbuf: Tensor, rows: Tensor, nx: Tensor, ny: Tensor, gid: Tensor, kx: int, ky: int, f: int,
           height: int, width: int) -> None:  # fmt: skip
    """Depth-test one size bucket of N triangles (table columns `rows`) at all kx x ky
    candidate pixels of their padded bboxes."""
    dev, n = rows.device, rows.shape[1]
    dx = torch.arange(kx, device=dev, dtype=rows.dtype).view(1, 1, kx)
    dy = torch.arange(ky, device=dev, dtype=rows.dtype).view(1, ky, 1)
    r = rows.view(15, n, 1, 1)
    inside = (dx < nx.view(-1, 1, 1)) & (dy < ny.view(-1, 1, 1))
    for k in range(3):
        inside &= (r[k] + r[3 + k] * dx + r[6 + k] * dy) >= -_INSIDE_EPS
    z = (r[9] + r[10] * dx + r[11] * dy).clamp_min(0)
    origin = (gid // f * (height * width)).view(-1, 1, 1) + r[_Y0].long() * width + r[_X0].long()
    pix = origin + (dy * width + dx).long()
    key = (z.float().view(torch.int32).long() << _ID_BITS) | gid.view(-1, 1, 1)
    zbuf.scatter_reduce_(0, pix[inside], key[inside], "amin")
