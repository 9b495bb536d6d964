"""Rendering of the embedded shapes set: one image of textured, coloured shapes on a cluttered background.

Deterministic for a random generator; small, medium and large objects in COCO's area ranges (< 32^2, 32^2..96^2,
> 96^2 pixels), partial overlaps and textured backgrounds.
"""
import math
from typing import Sequence, Tuple

import cv2
import numpy as np

from .shapes_settings import ALL_SHAPE_CLASSES, SIZE_RANGES, ShapesSettings


def _shape_mask(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A binary mask (size x size) of one shape, slightly rotated."""
    m = np.zeros((size, size), np.uint8)
    c, r = size / 2, size / 2 - 1
    if name == 'circle':
        cv2.circle(m, (int(c), int(c)), int(r), 1, -1)
    elif name in ('ring', 'thick_ring'):
        cv2.circle(m, (int(c), int(c)), int(r), 1, -1)
        cv2.circle(m, (int(c), int(c)), int(r * (0.55 if name == 'ring' else 0.3)), 0, -1)
    else:
        if name == 'square':
            pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            scale = r * 0.9  # corners may be clipped by the patch when rotated
        elif name == 'diamond':
            pts = [(0, -1), (1, 0), (0, 1), (-1, 0)]
            scale = r
        elif name == 'triangle':
            pts = [(0, -1), (0.95, 0.75), (-0.95, 0.75)]
            scale = r
        elif name == 'hexagon':
            pts = [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
            scale = r
        elif name == 'rectangle':
            pts = [(-1, -0.6), (1, -0.6), (1, 0.6), (-1, 0.6)]
            scale = r * 0.9
        elif name == 'trapezoid':
            pts = [(-0.4, -0.75), (0.4, -0.75), (0.95, 0.75), (-0.95, 0.75)]
            scale = r
        elif name == 'star':
            pts = [((1 if k % 2 == 0 else 0.45) * math.sin(k * math.pi / 5),
                    -(1 if k % 2 == 0 else 0.45) * math.cos(k * math.pi / 5)) for k in range(10)]
            scale = r
        elif name == 'kite':
            pts = [(0, -1), (0.6, -0.35), (0, 1), (-0.6, -0.35)]
            scale = r
        else:  # cross
            a = 0.35
            pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a),
                   (-1, -a), (-a, -a)]
            scale = r
        angle = rng.uniform(-0.3, 0.3)
        ca, sa = math.cos(angle), math.sin(angle)
        poly = np.array([[c + scale * (x * ca - y * sa), c + scale * (x * sa + y * ca)] for x, y in pts])
        cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    return m


def _texture(kind: str, size: int, colour, rng: np.random.Generator) -> np.ndarray:
    base = np.array(colour, np.float32) * rng.uniform(0.8, 1.1)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    yy, xx = np.mgrid[:size, :size]
    if kind == 'stripes':
        period = max(3, size // 6)
        img[((xx + yy) // period) % 2 == 1] *= 0.55
    elif kind == 'checker':
        period = max(3, size // 5)
        img[((xx // period) + (yy // period)) % 2 == 1] *= 0.55
    img += rng.normal(0, 8, img.shape)
    return img


def _background(size: Tuple[int, int], rng: np.random.Generator, clutter_lines: Sequence[int]) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    c0, c1 = rng.uniform(60, 190, 3), rng.uniform(60, 190, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / (h + w) + 0.5
    img = c0 * t[..., None] + c1 * (1 - t[..., None])
    for _ in range(rng.integers(*clutter_lines)):  # clutter: thin random lines
        p0 = tuple(int(v) for v in rng.integers(0, [w, h]))
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.line(img, p0, p1, tuple(float(v) for v in rng.uniform(40, 220, 3)), 1)
    img += rng.normal(0, 10, img.shape)
    return img


def _sample_side(rng: np.random.Generator, img_size: int, size_probs: Sequence[float]) -> int:
    """Side lengths covering COCO's small / medium / large area ranges (bucket probabilities ``size_probs``)."""
    bucket = rng.choice(3, p=list(size_probs))
    lo, hi = SIZE_RANGES[bucket]
    hi = min(hi, img_size - 4)  # small images: the buckets shrink to what fits
    return int(rng.integers(min(lo, hi), hi + 1))


def _draw_distractors(img: np.ndarray, rng: np.random.Generator, count: int, size_probs: Sequence[float]) -> None:
    """Up to ``count`` unlabelled blobs (random polygons) in jittered class colours: background clutter that looks
    like parts of objects."""
    img_size = img.shape[0]
    colours = [c for c, _ in ALL_SHAPE_CLASSES.values()]
    for _ in range(int(rng.integers(0, count + 1))):
        side = max(6, _sample_side(rng, img_size, size_probs) // 2)  # fragments: half an object's size
        x0, y0 = (int(v) for v in rng.integers(0, img_size - side + 1, 2))
        n = int(rng.integers(3, 8))
        pts = np.stack([x0 + rng.uniform(0, side, n), y0 + rng.uniform(0, side, n)], 1)
        centre = pts.mean(0)
        pts = pts[np.argsort(np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0]))]  # a simple polygon
        colour = np.array(colours[int(rng.integers(len(colours)))], np.float64) + rng.normal(0, 10, 3)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], tuple(float(v) for v in colour))


def render_image(rng: np.random.Generator, settings: ShapesSettings):
    """One image of ``settings`` and its objects (label, mask; objects occluded to < 16 pixels are dropped)."""
    img_size, max_objects, names = settings.img_size, settings.max_objects, settings.classes
    size_probs, distractors = settings.size_probs, settings.distractors
    img = _background((img_size, img_size), rng, settings.clutter_lines)
    if distractors:  # no random draws otherwise: the default set is unchanged
        _draw_distractors(img, rng, distractors, size_probs)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            side = _sample_side(rng, img_size, size_probs)
            x0, y0 = (int(v) for v in rng.integers(0, img_size - side + 1, 2))
            box = (x0, y0, x0 + side, y0 + side)
            if all(_iou(box, b) < 0.3 for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(len(names)))
        colour, tex = ALL_SHAPE_CLASSES[names[label]]
        mask = _shape_mask(names[label], side, rng).astype(bool)
        patch = _texture(tex, side, colour, rng)
        region = img[y0:y0 + side, x0:x0 + side]
        region[mask] = patch[mask]
        full = np.zeros((img_size, img_size), bool)
        full[y0:y0 + side, x0:x0 + side] = mask
        for prev in objects:  # a later shape occludes earlier ones
            prev['mask'] &= ~full
        objects.append(dict(label=label, mask=full))
        boxes.append(box)
    return np.clip(img, 0, 255).astype(np.uint8), [o for o in objects if o['mask'].sum() >= 16]


def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


