"""The stand-in head: a procedural FLAME-compatible mesh used when the licensed FLAME file is absent.

It has FLAME's joints (root, neck, jaw, two eyes) and metric scale (head at the origin, facing
+z, metres), and is sculpted to read as a human head at 512 px: a rounded cranium, brow,
forehead, closed eyelids over eyeballs (the lid line, the fold above it), nose with nostril
wings, philtrum, lips around a mouth slit, cheekbones, jaw and chin, ear shells (helix rim,
concha, tragus, lobe) and a neck that widens towards the shoulders; the jaw joint opens the mouth. It has NO shape or expression blend shapes (zeros), so
expression channels 0:100 do not move it: only the jaw and the global rotation do.

``make_standin()`` builds it from scratch (deterministic numpy); ``scripts/make_standin_head.py``
stores its non-zero buffers compactly in ``artalk_core/data/standin_head.npz`` and
``load_standin()`` reads that file, expanding the zero blend shapes.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from artalk_core.constants import EXP_DIM, NUM_JOINTS, SHAPE_DIM
from artalk_core.errors import AssetError
from artalk_core.fileio import PathLike, atomic_output
from artalk_core.flame.buffers import model_from_dict

STANDIN_FILE: Path = Path(__file__).resolve().parent.parent / "data" / "standin_head.npz"
STANDIN_SOURCE: str = "stand-in"
STANDIN_VERSION: int = 1

# Grid of the head surface: latitude rows between two poles, longitude columns.
_ROWS = 72
_COLS = 76
_CENTER = np.array([0.0, 0.0, -0.005])
_NECK_AXIS_Z = -0.02
_NECK_RADIUS = 0.048
_NECK_BOTTOM = -0.195
_MOUTH_HALF_ANGLE = 0.27  # radians of longitude either side of the front
_EYE_RADIUS = 0.0125
_EYE_RINGS, _EYE_SEGMENTS = 12, 16


def _smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float, s_lon: float, s_lat: float) -> np.ndarray:
    return np.exp(-0.5 * (((lon - lon0) / s_lon) ** 2 + ((lat - lat0) / s_lat) ** 2))


def _neck_radii(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-width (x) and half-depth (z) of the neck at height y: it widens towards the bottom,
    where the trapezius leads to the shoulders (below the picture's bottom edge)."""
    # Gentle: seen from the head's centre (the grid's origin) a steeper flare would hide its own wall.
    flare = _smoothstep(-0.11, -0.2, y)
    return _NECK_RADIUS + 0.011 * flare, np.full_like(y, _NECK_RADIUS - 0.002)


def _base_radius(d: np.ndarray) -> np.ndarray:
    """Distance from the head centre to the skull+neck surface along unit directions d [N,3]."""
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    # An egg: longer at the back than the face, taller above the centre, narrower at the jaw.
    ax = 0.079 + (0.063 - 0.079) * _smoothstep(0.0, -0.75, dy)
    ay = np.where(dy > 0, 0.1, 0.118)
    az = np.where(dz > 0, 0.088, 0.101)
    p = 2.0 + 0.4 * _smoothstep(0.0, 0.4, dy)  # a fuller, rounder-shouldered cranium than an ellipsoid's
    skull = (np.abs(dx / ax) ** p + np.abs(dy / ay) ** p + np.abs(dz / az) ** p) ** (-1.0 / p)
    # Neck: an elliptic column that widens at the bottom where the shoulders begin, capped below;
    # joined to the skull with a smooth max. Its radius depends on the height, so the distance
    # along d is found by a few fixed-point steps from the widest column.
    off = _CENTER[2] - _NECK_AXIS_Z  # centre's z offset from the neck axis

    def outside(t: np.ndarray) -> np.ndarray:
        rx, rz = _neck_radii(_CENTER[1] + t * dy)
        return (t * dx / rx) ** 2 + ((off + t * dz) / rz) ** 2 > 1.0

    lo, hi = np.zeros_like(dx), np.full_like(dx, 0.4)
    for _ in range(40):  # bisection: the column's radius depends on the height
        mid = 0.5 * (lo + hi)
        out = outside(mid)
        hi, lo = np.where(out, mid, hi), np.where(out, lo, mid)
    t = 0.5 * (lo + hi)
    cap = np.where(dy < -1e-6, (_CENTER[1] - _NECK_BOTTOM) / np.maximum(-dy, 1e-6), np.inf)
    # a rounded (smooth-min) edge where the column meets its base, not a cut
    neck = np.where(dy < 0, (t ** -12.0 + cap ** -12.0) ** (-1.0 / 12.0), 0.0)
    k = 14.0
    return (skull ** k + neck ** k) ** (1.0 / k)


def _ellipse(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float, a: float, b: float) -> np.ndarray:
    """Elliptic 'radius' around (lon0, lat0): 1 on the ellipse with half-axes a (longitude), b (latitude)."""
    return np.sqrt(((lon - lon0) / a) ** 2 + ((lat - lat0) / b) ** 2)


def _ear(lon: np.ndarray, lat: np.ndarray, side: float) -> np.ndarray:
    """An ear shell: a flap standing off the head, thickest at its rim (helix, a C open to the
    front), with a hollow (concha) in front of the canal, the tragus before it and a lobe below."""
    lon0, lat0 = side * 1.56, -0.03
    back = np.clip(side * (lon - lon0) / 0.2, -1.0, 1.0)  # -1 front edge .. +1 back edge
    e = _ellipse(lon, lat, lon0, lat0, 0.2, 0.42)
    shell = _smoothstep(1.25, 0.7, e)
    r = shell * (0.004 + 0.008 * (0.5 + 0.5 * back))  # the flap stands off more at the back
    rim = np.exp(-0.5 * ((e - 0.82) / 0.12) ** 2) * _smoothstep(-0.7, 0.1, back + 0.6 * (lat > lat0 + 0.2))
    r += 0.0045 * rim
    r -= 0.009 * np.exp(-0.5 * _ellipse(lon, lat, lon0 - side * 0.02, lat0 - 0.05, 0.085, 0.17) ** 2)  # concha
    r -= 0.0035 * np.exp(-0.5 * _ellipse(lon, lat, lon0 + side * 0.03, lat0 + 0.2, 0.07, 0.08) ** 2)  # fossa
    r += 0.004 * np.exp(-0.5 * _ellipse(lon, lat, lon0 + side * 0.01, lat0 - 0.38, 0.09, 0.08) ** 2)  # lobe
    r += 0.004 * np.exp(-0.5 * _ellipse(lon, lat, lon0 - side * 0.17, lat0 - 0.06, 0.045, 0.07) ** 2)  # tragus
    return r


def _eye(lon: np.ndarray, lat: np.ndarray, side: float) -> np.ndarray:
    """A closed eye: the socket, the eyelids bulging over the eyeball, the line where the lids
    meet (curving down at the corners) and the fold of the upper lid above it."""
    lon0, lat0 = side * 0.33, 0.165
    r = -0.013 * _gauss(lon, lat, lon0, lat0 + 0.005, 0.13, 0.08)  # socket
    almond = _gauss(lon, lat, lon0, lat0, 0.11, 0.05)
    r += 0.009 * almond  # lids over the eyeball
    du = (lon - lon0) / 0.12
    meet = lat0 - 0.01 - 0.012 * du ** 2  # the lid line curves down towards the corners
    width = _smoothstep(1.2, 0.6, np.abs(du))
    r -= 0.0035 * width * np.exp(-0.5 * ((lat - meet) / 0.022) ** 2)
    r -= 0.002 * width * np.exp(-0.5 * ((lat - (lat0 + 0.055 - 0.02 * du ** 2)) / 0.022) ** 2)  # lid fold
    r += 0.0035 * _gauss(lon, lat, side * 0.3, 0.295, 0.2, 0.045)  # brow
    return r


def _features(lon: np.ndarray, lat: np.ndarray, lat_mouth: float) -> np.ndarray:
    """Radial relief (metres) of the face and ears at longitude/latitude (0,0 = straight ahead)."""
    front = _smoothstep(1.3, 0.6, np.abs(lon))
    r = np.zeros_like(lon)
    # Nose: a ridge from the bridge to a rounded tip, wider towards the nostrils.
    tip = -0.22
    ramp = np.clip((0.22 - lat) / (0.22 - tip), 0.0, 1.0)
    height = (0.004 + 0.015 * ramp) * np.where(lat < tip, np.exp(-(((lat - tip) / 0.06) ** 2)), 1.0)
    height *= _smoothstep(0.32, 0.18, lat)
    width = 0.05 + 0.06 * ramp
    r += height * np.exp(-0.5 * (lon / width) ** 2)
    r += 0.004 * _gauss(lon, lat, 0.0, tip - 0.005, 0.06, 0.045)  # tip
    r += 0.005 * _gauss(lon, lat, 0.0, 0.52, 0.55, 0.2)  # forehead
    for side in (-1.0, 1.0):
        r += 0.007 * _gauss(lon, lat, side * 0.13, tip + 0.01, 0.05, 0.045)  # nostril wings
        r -= 0.003 * _gauss(lon, lat, side * 0.24, tip + 0.02, 0.05, 0.08)  # nose-cheek groove
        r += _eye(lon, lat, side)
        r += 0.005 * _gauss(lon, lat, side * 0.55, -0.08, 0.16, 0.12)  # cheekbones
        r -= 0.003 * _gauss(lon, lat, side * 0.85, 0.33, 0.12, 0.12)  # temples
        r += 0.004 * _gauss(lon, lat, side * 0.95, -0.6, 0.15, 0.1)  # angle of the jaw
        r -= 0.0045 * _gauss(lon, lat, side * 0.3, lat_mouth - 0.01, 0.05, 0.05)  # mouth corners
        r += 0.0012 * _gauss(lon, lat, side * 0.045, lat_mouth + 0.12, 0.015, 0.05)  # philtrum ridges
    r -= 0.0018 * _gauss(lon, lat, 0.0, lat_mouth + 0.12, 0.025, 0.05)  # philtrum groove
    # Lips: an upper lip (dipping at the middle) over the slit and a fuller lower lip under it,
    # each with a crisp edge; below them the groove above the chin, then the chin.
    lips_w = _smoothstep(0.36, 0.12, np.abs(lon))
    upper_c = lat_mouth + 0.035 - 0.008 * np.exp(-0.5 * (lon / 0.05) ** 2)
    thick = 0.45 + 0.55 * lips_w  # lips thin out towards the corners
    r += 0.006 * lips_w * np.exp(-0.5 * ((lat - lat_mouth - (upper_c - lat_mouth) * thick) / (0.03 * thick)) ** 2)
    r += 0.007 * lips_w * np.exp(-0.5 * ((lat - lat_mouth + 0.045 * thick) / (0.035 * thick)) ** 2)
    r -= 0.002 * lips_w * np.exp(-0.5 * ((lat - lat_mouth) / 0.012) ** 2)
    r -= 0.0045 * _gauss(lon, lat, 0.0, lat_mouth - 0.13, 0.2, 0.04)  # under the lower lip
    r += 0.011 * _gauss(lon, lat, 0.0, -0.88, 0.22, 0.11)  # chin
    r *= np.where(np.abs(lon) > 1.4, 1.0, front)
    for side in (-1.0, 1.0):
        r += _ear(lon, lat, side)
    return r


def _theta_rows() -> np.ndarray:
    """Polar angles (0 = top) of the grid rows, evenly spaced along the surface (the longest of the
    front, side and back profiles) and twice as dense over the face. Even in angle they would leave the neck,
    which rays from the head's centre meet at a glancing angle, with a handful of long rows."""
    fine = np.linspace(1e-3, np.pi - 1e-3, 3000)
    step = np.zeros(len(fine) - 1)
    for lon in (0.0, 0.4, np.pi / 2, np.pi):
        p = _surface(_directions(fine, np.full_like(fine, lon)), -0.45)
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        seg[p[1:, 1] < _NECK_BOTTOM + 1e-4] *= 0.5  # the flat base is never seen: fewer rows there
        step = np.maximum(step, seg)
    mid = 0.5 * (fine[1:] + fine[:-1])
    step *= 1.0 + _smoothstep(0.8, 1.1, mid) * _smoothstep(2.5, 2.2, mid)  # the face: twice as dense
    along = np.concatenate([[0.0], np.cumsum(step)])
    return np.interp(np.linspace(0.0, along[-1], _ROWS + 2)[1:-1], along, fine)


def _phi_cols() -> np.ndarray:
    """Longitudes (0 = front, +x side positive) of the grid columns: about 3x denser at the front and
    2.5x at the ears than at the back of the head."""
    s = -1.0 + 2.0 * np.arange(_COLS) / _COLS
    # dense over the face, still fine enough at the ears (|lon| ~ 1.6), coarse at the back
    return np.pi * s - 0.55 * np.sin(np.pi * s) + 0.1 * np.sin(2 * np.pi * s)


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    theta, phi = np.broadcast_arrays(theta, phi)
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], axis=-1)


def _surface(d: np.ndarray, lat_mouth: float) -> np.ndarray:
    lon = np.arctan2(d[:, 0], d[:, 2])
    lat = np.arcsin(np.clip(d[:, 1], -1.0, 1.0))
    r = _base_radius(d) + _features(lon, lat, lat_mouth)
    return _CENTER + r[:, None] * d


def _sphere(center: np.ndarray, radius: float, first_index: int) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere: vertices [2 + R*S, 3] and outward faces (indices offset by first_index)."""
    theta = np.pi * np.arange(1, _EYE_RINGS) / _EYE_RINGS
    phi = 2 * np.pi * np.arange(_EYE_SEGMENTS) / _EYE_SEGMENTS
    ring = _directions(theta[:, None], phi[None, :]).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]]) * radius + center
    faces = _grid_faces(len(theta), _EYE_SEGMENTS, lambda i, j: 1 + i * _EYE_SEGMENTS + j, 0, len(verts) - 1)
    return verts, faces + first_index


def _grid_faces(rows: int, cols: int, index: Any, top: int, bottom: int) -> np.ndarray:
    """Outward triangles of a latitude/longitude grid closed by a top and a bottom pole."""
    faces = []
    for j in range(cols):
        j1 = (j + 1) % cols
        faces.append((top, index(0, j), index(0, j1)))
        faces.append((bottom, index(rows - 1, j1), index(rows - 1, j)))
        for i in range(rows - 1):
            a, b = index(i, j), index(i, j1)
            c, d = index(i + 1, j1), index(i + 1, j)
            faces.append((a, d, c))
            faces.append((a, c, b))
    return np.asarray(faces, dtype=np.int64)


def _mirror_pair(verts: np.ndarray, y: float, z: float) -> tuple[int, int]:
    """Indices of a vertex on the +x side nearest to (y, z) and of its mirror image."""
    pos = np.where(verts[:, 0] > 0.02)[0]
    best = pos[np.argmin((verts[pos, 1] - y) ** 2 + (verts[pos, 2] - z) ** 2)]
    mirror = verts * np.array([-1.0, 1.0, 1.0])
    twin = int(np.argmin(np.sum((mirror - verts[best]) ** 2, axis=1)))
    return int(best), twin


def _build() -> dict[str, np.ndarray]:
    theta, phi = _theta_rows(), _phi_cols()
    lat_rows = np.pi / 2 - theta
    i_mouth = int(np.argmin(np.abs(lat_rows - (-0.45))))  # the slit lies exactly on a grid row
    lat_mouth = float(lat_rows[i_mouth])

    grid_d = _directions(theta[:, None], phi[None, :]).reshape(-1, 3)
    poles = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    head = _surface(np.concatenate([poles[:1], grid_d, poles[1:]]), lat_mouth)
    top, bottom = 0, len(head) - 1

    def grid_index(i: int, j: int) -> int:
        return 1 + i * _COLS + j

    faces = _grid_faces(_ROWS, _COLS, grid_index, top, bottom)
    # Mouth slit: the slit row's front vertices get twins for the lower lip, used by the faces
    # below the row, so the jaw can pull the lower lip away; the corner columns stay shared.
    slit_cols = [j for j in range(_COLS) if abs(phi[j]) < _MOUTH_HALF_ANGLE]
    twins = {grid_index(i_mouth, j): len(head) + k for k, j in enumerate(slit_cols)}
    below = np.zeros(len(faces), dtype=bool)
    for j in range(_COLS):
        j1 = (j + 1) % _COLS
        for tri in ((grid_index(i_mouth, j), grid_index(i_mouth + 1, j), grid_index(i_mouth + 1, j1)),
                    (grid_index(i_mouth, j), grid_index(i_mouth + 1, j1), grid_index(i_mouth, j1))):
            below |= np.all(faces == np.asarray(tri), axis=1)
    for row in np.where(below)[0]:
        faces[row] = [twins.get(int(v), int(v)) for v in faces[row]]
    head = np.concatenate([head, head[list(twins)]])

    # Skinning weights of the head: jaw below a line from the slit back to the jaw hinge.
    lon = np.arctan2(head[:, 0], head[:, 2] - _CENTER[2])
    rel = head - _CENTER
    lat = np.arcsin(np.clip(rel[:, 1] / np.linalg.norm(rel, axis=1), -1, 1))
    alon = np.abs(lon)
    hinge_lat = -0.12
    t = np.clip((alon - _MOUTH_HALF_ANGLE) / (1.35 - _MOUTH_HALF_ANGLE), 0.0, 1.0)
    boundary = lat_mouth + (hinge_lat - lat_mouth) * t
    width = 0.02 + 0.12 * t
    w_jaw = _smoothstep(-1.0, 1.0, (boundary - lat) / width)
    # Only the face side of the jaw, fading out on the neck (sooner towards the sides).
    floor = -0.13 + 0.04 * _smoothstep(0.5, 1.3, alon)
    w_jaw *= _smoothstep(1.7, 1.25, alon) * _smoothstep(floor - 0.035, floor + 0.025, head[:, 1])
    upper = [grid_index(i_mouth, j) for j in slit_cols]
    w_jaw[upper] = 0.0
    w_jaw[list(twins.values())] = 1.0
    w_root = _smoothstep(-0.1, -0.15, head[:, 1]) * (1.0 - w_jaw)
    weights = np.zeros((len(head), NUM_JOINTS))
    weights[:, 0] = w_root
    weights[:, 2] = w_jaw
    weights[:, 1] = 1.0 - w_jaw - w_root

    # Eyeballs set into the sockets, each skinned to its eye joint (3 = +x, the head's left).
    verts, all_faces, eye_ranges = [head], [faces], []
    for side, joint in ((1.0, 3), (-1.0, 4)):
        aim = np.array([side * 0.032, 0.026, 0.085]) - _CENTER
        surf = _surface((aim / np.linalg.norm(aim))[None], lat_mouth)[0]
        center = np.array([surf[0], surf[1], surf[2] - _EYE_RADIUS - 0.006])  # under the closed lids
        start = sum(len(v) for v in verts)
        ev, ef = _sphere(center, _EYE_RADIUS, start)
        verts.append(ev)
        all_faces.append(ef)
        eye_ranges.append((start, start + len(ev), joint))
        w = np.zeros((len(ev), NUM_JOINTS))
        w[:, joint] = 1.0
        weights = np.concatenate([weights, w])
    v_template = np.concatenate(verts)
    f = np.concatenate(all_faces)

    # Joint regressor: mirrored vertex pairs (their mean lies on the midline) for root, neck and
    # jaw; the mean of each eyeball for the eyes, as FLAME does.
    j_reg = np.zeros((NUM_JOINTS, len(v_template)))
    for joint, (y, z) in ((0, (-0.075, -0.02)), (1, (-0.03, -0.01)), (2, (-0.025, -0.005))):
        a, b = _mirror_pair(v_template[: len(head)], y, z)
        j_reg[joint, [a, b]] = 0.5
    for start, stop, joint in eye_ranges:
        j_reg[joint, start:stop] = 1.0 / (stop - start)
    return {
        "v_template": v_template.astype(np.float32),
        "f": f.astype(np.int32),
        "weights": weights.astype(np.float32),
        "J_regressor": j_reg.astype(np.float32),
        "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "mouth_lower_lip": np.asarray(list(twins.values()), dtype=np.int64),
        "mouth_upper_lip": np.asarray(upper, dtype=np.int64),
    }


def make_standin() -> dict[str, Any]:
    """The stand-in head in the ``FLAME_with_eye.pt`` layout: ``{'flame_model': {f, v_template,
    shapedirs [V,3,400] zeros, posedirs [V,3,36] zeros, J_regressor [5,V], kintree_table [2,5],
    weights [V,5]}, 'standin': True, 'standin_version': 1}`` with torch tensors."""
    import torch

    parts = _build()
    return _full_layout({k: torch.from_numpy(v) for k, v in parts.items()})


def _full_layout(parts: dict[str, Any]) -> dict[str, Any]:
    import torch

    v = parts["v_template"].shape[0]
    fm = {
        "f": parts["f"].long(),
        "v_template": parts["v_template"].float(),
        "shapedirs": torch.zeros((v, 3, SHAPE_DIM + EXP_DIM), dtype=torch.float32),
        "posedirs": torch.zeros((v, 3, 36), dtype=torch.float32),
        "J_regressor": parts["J_regressor"].float(),
        "kintree_table": parts["kintree_table"].long(),
        "weights": parts["weights"].float(),
    }
    return {"flame_model": fm, "standin": True, "standin_version": STANDIN_VERSION,
            "mouth_lower_lip": parts["mouth_lower_lip"].long(),
            "mouth_upper_lip": parts["mouth_upper_lip"].long()}


def save_compact(path: PathLike) -> None:
    """Store the non-zero stand-in buffers (the bundled ``standin_head.npz``, ~100 KB)."""
    parts = _build()
    parts["standin"] = np.array(True)
    parts["standin_version"] = np.array(STANDIN_VERSION)
    with atomic_output(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **parts)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds


def write_standin(path: PathLike) -> None:
    """Write the stand-in as a full ``FLAME_with_eye.pt``-layout torch file (with a ``standin`` flag)."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(make_standin(), str(tmp))


def _read_compact(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@functools.lru_cache(maxsize=1)
def _standin_cpu() -> Any:
    import torch

    if not STANDIN_FILE.is_file():
        raise AssetError(f"the bundled stand-in head is missing ({STANDIN_FILE}); reinstall artalk or run "
                         f"scripts/make_standin_head.py")
    data = STANDIN_FILE.read_bytes()
    parts = {k: torch.from_numpy(v) for k, v in _read_compact(STANDIN_FILE).items()}
    layout = _full_layout(parts)
    model = model_from_dict(layout["flame_model"], source=STANDIN_SOURCE,
                            sha256=hashlib.sha256(data).hexdigest(), is_standin=True)
    model.mouth_lower_lip = parts["mouth_lower_lip"].numpy()  # type: ignore[attr-defined]
    model.mouth_upper_lip = parts["mouth_upper_lip"].numpy()  # type: ignore[attr-defined]
    return model


def load_standin() -> Any:
    """The bundled stand-in head as a :class:`FlameModel` (``is_standin``, source ``"stand-in"``).

    Cached: the same (CPU) object is returned on every call; use ``.to(device)`` for a copy. It also
    carries ``mouth_upper_lip`` / ``mouth_lower_lip`` (vertex indices either side of the mouth slit).
    """
    return _standin_cpu()
