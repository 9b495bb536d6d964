"""The embedded dataset: synthetic COCO-format detection images of textured, coloured shapes.

Deterministic for a seed; small, medium and large objects in COCO's area ranges (< 32^2, 32^2..96^2, > 96^2
pixels), partial overlaps and textured backgrounds. It is written once under ``root`` and then read by mmdet's
own ``CocoDataset``/``CocoMetric``, exactly as a real COCO directory would be::

    root/annotations/instances_{train,val}.json
    root/{train,val}/000000.jpg ...

Safe to start concurrently (DDP ranks, two experiments on one data root): :func:`ensure_shapes_split` lets one
process generate under an exclusive lock on ``root/.shapes_{split}.lock`` while the others wait, and every file
is written under a unique temporary name and moved into place with ``os.replace``, so no reader ever meets a
half-written file. The annotation json records the generator settings and is written last; a missing,
unreadable (e.g. truncated) or stale json, or one whose images are missing, makes the split be regenerated.

Difficulty knobs (their defaults reproduce the original set byte for byte, and a json records only the knobs that
differ from the defaults): ``classes`` (any of :data:`ALL_SHAPE_CLASSES`, which adds a look-alike of each default
class), ``max_objects``, ``size_probs`` (share of small / medium / large objects), ``clutter_lines`` (range of
background lines) and ``distractors`` (unlabelled class-coloured blobs). ``configs/shapes/*_hard*.py`` use them.
"""
import contextlib
import json
import math
import os
import os.path as osp
import time
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..fileio import atomic_write

# name -> (BGR colour, texture); colour, shape and texture all carry the class.
SHAPE_CLASSES: Dict[str, Tuple[Tuple[int, int, int], str]] = {
    'circle': ((40, 40, 220), 'solid'),
    'square': ((40, 200, 40), 'stripes'),
    'triangle': ((220, 80, 30), 'solid'),
    'cross': ((30, 210, 230), 'checker'),
    'ring': ((200, 40, 200), 'solid'),
    'diamond': ((230, 230, 60), 'stripes'),
}
# Look-alikes of the default classes, for harder settings: each has the texture of its model class, a colour
# within ~20 of it (per channel) and a related outline, so shape details and small colour differences carry
# the class. Not in the default class set.
LOOKALIKE_CLASSES: Dict[str, Tuple[Tuple[int, int, int], str]] = {
    'hexagon': ((55, 50, 205), 'solid'),  # ~ circle
    'rectangle': ((50, 185, 55), 'stripes'),  # ~ square
    'trapezoid': ((205, 95, 40), 'solid'),  # ~ triangle
    'star': ((40, 195, 215), 'checker'),  # ~ cross
    'thick_ring': ((185, 50, 190), 'solid'),  # ~ ring
    'kite': ((215, 220, 75), 'stripes'),  # ~ diamond
}
ALL_SHAPE_CLASSES: Dict[str, Tuple[Tuple[int, int, int], str]] = {**SHAPE_CLASSES, **LOOKALIKE_CLASSES}
# generator knobs beyond the class list and max_objects, with the defaults of the original set
KNOB_DEFAULTS = dict(size_probs=(0.25, 0.5, 0.25), clutter_lines=(3, 8), distractors=0)
VERSION = 2  # bump when the generator's output changes; recorded in the annotation files


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


def _background(size: Tuple[int, int], rng: np.random.Generator, clutter_lines: Sequence[int] = (3, 8)) -> np.ndarray:
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


def _sample_side(rng: np.random.Generator, img_size: int, size_probs: Sequence[float] = (0.25, 0.5, 0.25)) -> int:
    """Side lengths covering COCO's small / medium / large area ranges (bucket probabilities ``size_probs``)."""
    bucket = rng.choice(3, p=list(size_probs))
    lo, hi = [(12, 30), (34, 90), (104, 124)][bucket]
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


def _render_image(rng: np.random.Generator, img_size: int, max_objects: int, names: Sequence[str],
                  size_probs: Sequence[float] = (0.25, 0.5, 0.25), clutter_lines: Sequence[int] = (3, 8),
                  distractors: int = 0):
    img = _background((img_size, img_size), rng, clutter_lines)
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


def _annotation(obj: dict, ann_id: int, image_id: int) -> dict:
    mask = obj['mask'].astype(np.uint8)
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segm = [c.flatten().astype(float).tolist() for c in contours if len(c) >= 3]
    return dict(id=ann_id, image_id=image_id, category_id=obj['label'] + 1, iscrowd=0, area=float(mask.sum()),
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)], segmentation=segm)


def check_shapes_knobs(classes: Sequence[str] = tuple(SHAPE_CLASSES), max_objects: int = 4,
                       size_probs: Sequence[float] = KNOB_DEFAULTS['size_probs'],
                       clutter_lines: Sequence[int] = KNOB_DEFAULTS['clutter_lines'],
                       distractors: int = KNOB_DEFAULTS['distractors']) -> None:
    """Raise ``ValueError`` (saying what is allowed) for a generator setting it cannot make."""
    if isinstance(classes, str) or not len(classes):
        raise ValueError(f'classes must be a non-empty list of shape names from {list(ALL_SHAPE_CLASSES)}, '
                         f'got {classes!r}')
    unknown = [c for c in classes if c not in ALL_SHAPE_CLASSES]
    if unknown:
        raise ValueError(f'unknown shape classes {unknown}; allowed: {list(ALL_SHAPE_CLASSES)}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes must not repeat a name, got {list(classes)}')
    if isinstance(max_objects, bool) or not isinstance(max_objects, (int, np.integer)) or max_objects < 1:
        raise ValueError(f'max_objects must be an integer >= 1, got {max_objects!r}')
    try:
        probs = [float(p) for p in size_probs]
    except (TypeError, ValueError):
        probs = []
    if len(probs) != 3 or min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        raise ValueError('size_probs must be 3 probabilities >= 0 summing to 1 (small: side 12-30 px, medium: 34-90, '
                         f'large: 104-124), got {size_probs!r}')
    lines = list(clutter_lines) if isinstance(clutter_lines, (list, tuple)) else []
    if len(lines) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lines) \
            or not 0 <= lines[0] < lines[1]:
        raise ValueError('clutter_lines must be two integers (lo, hi) with 0 <= lo < hi (the number of background '
                         f'lines is drawn from [lo, hi)), got {clutter_lines!r}')
    if isinstance(distractors, bool) or not isinstance(distractors, (int, np.integer)) or distractors < 0:
        raise ValueError(f'distractors must be an integer >= 0 (the most unlabelled blobs per image), got '
                         f'{distractors!r}')


def _knobs(size_probs, clutter_lines, distractors) -> dict:
    """The knobs as the json records them (lists, plain numbers)."""
    return dict(size_probs=[float(p) for p in size_probs], clutter_lines=[int(v) for v in clutter_lines],
                distractors=int(distractors))


_DEFAULT_KNOBS = _knobs(**KNOB_DEFAULTS)


def _settings(num_images: int, img_size: int, max_objects: int, seed: int, classes: Sequence[str],
              size_probs: Sequence[float] = KNOB_DEFAULTS['size_probs'],
              clutter_lines: Sequence[int] = KNOB_DEFAULTS['clutter_lines'],
              distractors: int = KNOB_DEFAULTS['distractors'], full: bool = False) -> dict:
    """What the annotation json records about how it was made (checked by :func:`ensure_shapes_split`): the
    knobs only where they differ from :data:`KNOB_DEFAULTS` (so the default json is unchanged), or all of them
    with ``full=True``."""
    settings = dict(version=VERSION, seed=seed, num_images=num_images, img_size=img_size, max_objects=max_objects,
                    classes=list(classes))
    for k, v in _knobs(size_probs, clutter_lines, distractors).items():
        if full or v != _DEFAULT_KNOBS[k]:
            settings[k] = v
    return settings


def generate_shapes_split(root: str, split: str, num_images: int, img_size: int = 128, max_objects: int = 4,
                          seed: int = 0, classes: Sequence[str] = tuple(SHAPE_CLASSES),
                          size_probs: Sequence[float] = KNOB_DEFAULTS['size_probs'],
                          clutter_lines: Sequence[int] = KNOB_DEFAULTS['clutter_lines'],
                          distractors: int = KNOB_DEFAULTS['distractors']) -> str:
    """Write ``num_images`` images and ``annotations/instances_{split}.json``; returns the json path.

    The json (with the settings in ``info``) is removed first and written last, so it exists only while every
    image it lists is complete. Not locked: concurrent callers should use :func:`ensure_shapes_split`.
    The knobs are checked by :func:`check_shapes_knobs`; their defaults give the original set."""
    from mmengine.utils import ProgressBar
    check_shapes_knobs(classes, max_objects, size_probs, clutter_lines, distractors)
    os.makedirs(osp.join(root, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', f'instances_{split}.json')
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)  # an old json must not outlive the images it described
    rng = np.random.default_rng([seed, {'train': 0, 'val': 1, 'test': 2}.get(split, 3)])
    images: List[dict] = []
    anns: List[dict] = []
    print(f'[rebnn_det] generating the embedded shapes dataset: {num_images} {split} images in {root}', flush=True)
    bar = ProgressBar(num_images)
    for i in range(num_images):
        img, objects = _render_image(rng, img_size, max_objects, classes, size_probs, clutter_lines, distractors)
        file_name = f'{split}/{i:06d}.jpg'
        ok, jpg = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise RuntimeError(f'OpenCV could not encode {file_name} as JPEG')
        atomic_write(osp.join(root, file_name), lambda f: f.write(jpg.tobytes()))
        images.append(dict(id=i, file_name=file_name, height=img_size, width=img_size))
        anns += [_annotation(o, len(anns) + 1 + k, i) for k, o in enumerate(objects)]
        bar.update()
    print(flush=True)
    info = dict(description='rebnn_det embedded shapes', **_settings(num_images, img_size, max_objects, seed,
                                                                       classes, size_probs, clutter_lines,
                                                                       distractors))
    coco = dict(info=info, images=images, annotations=anns,
                categories=[dict(id=k + 1, name=c, supercategory='shape') for k, c in enumerate(classes)])
    atomic_write(path, lambda f: f.write(json.dumps(coco).encode()))  # the json comes last, after every image
    return path


_OTHER_SETTINGS = 'made with other settings'


def _why_regenerate(root: str, ann: str, wanted: dict) -> Optional[str]:
    """``None`` when ``ann`` is a complete split made with ``wanted`` settings, else the reason it is not."""
    try:
        with open(ann, 'rb') as f:
            coco = json.loads(f.read())
        info = coco['info']
        file_names = [img['file_name'] for img in coco['images']]
    except FileNotFoundError:
        return 'not generated yet'
    except (ValueError, KeyError, TypeError, OSError) as e:  # JSONDecodeError is a ValueError
        return f'unreadable ({type(e).__name__}: {e})'
    # knobs missing from a json were at their defaults (a json records only the knobs that differ)
    recorded = {k: info.get(k, _DEFAULT_KNOBS.get(k)) for k in wanted} if isinstance(info, dict) else None
    if recorded != wanted:
        return f'{_OTHER_SETTINGS} ({recorded}, wanted {wanted})'
    if len(file_names) != wanted['num_images']:
        return f'lists {len(file_names)} images, wanted {wanted["num_images"]}'
    missing = [n for n in file_names if not osp.isfile(osp.join(root, n))]
    if missing:
        return f'{len(missing)} of its images are missing (first: {osp.join(root, missing[0])})'
    return None


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if needed, never removed): ``fcntl.flock``
    on Linux/macOS, ``msvcrt.locking`` on Windows. The OS drops it when the holder dies, so a killed generator
    never blocks the next run. Where no lock is available a warning says that concurrent starts are unsafe."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # e.g. a network file system without lock support
                warnings.warn(f'cannot lock {path} ({e}): do not start several runs on this data root at once')
            yield
            return
        try:
            import msvcrt
        except ImportError:
            msvcrt = None
        if msvcrt is None:
            warnings.warn(f'no file locking on this platform: do not start several runs on {osp.dirname(path)} '
                          'at once')
            yield
            return
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                break
            except OSError:
                time.sleep(0.1)
        try:
            yield
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)  # closing the descriptor also releases a flock


class ShapesInUseError(RuntimeError):
    """The split exists with other settings and another process is reading it: regenerating would change its
    images under it."""


# ``data_root/.shapes_{split}.readers`` -> descriptor holding a shared lock for as long as this process lives: every
# process that uses a split (and its forked data workers) holds one, so a regeneration with other settings can
# tell that someone reads the split. The OS drops the locks of a process that ends.
_READER_LOCKS: Dict[str, int] = {}


def _hold_reader_lock(path: str) -> None:
    """Hold a shared lock on ``path`` for the rest of this process (waits while a regeneration holds it
    exclusively). Not available (no ``fcntl``, a read-only data root): nothing to hold -- and then no process can
    regenerate the split either."""
    if path in _READER_LOCKS:
        return
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return
    _READER_LOCKS[path] = fd


def _release_reader_lock(path: str) -> None:
    fd = _READER_LOCKS.pop(path, None)
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def _no_other_readers(path: str, refuse: Callable[[], str]) -> Iterator[None]:
    """Hold ``path`` exclusively while the block rewrites the split, or raise :class:`ShapesInUseError` with the
    text ``refuse()`` when another process holds a reader lock (this process's own lock is let go first: a
    process that asks for other settings itself is not reading the old ones any more)."""
    _release_reader_lock(path)
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShapesInUseError(refuse()) from None
        except OSError:  # no lock support on this file system: the generation lock's warning says so
            pass
        yield
    finally:
        os.close(fd)


def ensure_shapes_split(data_root: str, split: str, num_images: int, img_size: int, seed: int,
                        max_objects: int = 4, classes: Sequence[str] = tuple(SHAPE_CLASSES),
                        size_probs: Sequence[float] = KNOB_DEFAULTS['size_probs'],
                        clutter_lines: Sequence[int] = KNOB_DEFAULTS['clutter_lines'],
                        distractors: int = KNOB_DEFAULTS['distractors']) -> str:
    """Return ``data_root/annotations/instances_{split}.json``, generating the split first when it is missing,
    unreadable, made with other settings or missing images; this process then counts as a reader of the split.

    Safe for concurrent callers (DDP ranks, several experiments): the one that takes the lock on
    ``data_root/.shapes_{split}.lock`` generates, the others wait for it and then find the split complete. A
    split made with *other* settings (another seed, size, knobs) is regenerated only when no other process is
    reading it; otherwise :class:`ShapesInUseError` says so and nothing is written (give the dataset its own
    ``data_root``). Repairs with the same settings (a missing image, a truncated json) rewrite identical files
    and are always made."""
    check_shapes_knobs(classes, max_objects, size_probs, clutter_lines, distractors)
    knobs = dict(size_probs=size_probs, clutter_lines=clutter_lines, distractors=distractors)
    ann = osp.join(data_root, 'annotations', f'instances_{split}.json')
    readers = osp.join(data_root, f'.shapes_{split}.readers')
    wanted = _settings(num_images, img_size, max_objects, seed, classes, **knobs, full=True)
    if osp.isdir(data_root) and _why_regenerate(data_root, ann, wanted) is None:
        _hold_reader_lock(readers)  # waits while a regeneration runs, so check again under it
        if _why_regenerate(data_root, ann, wanted) is None:
            return ann
    os.makedirs(data_root, exist_ok=True)
    with exclusive_lock(osp.join(data_root, f'.shapes_{split}.lock')):
        reason = _why_regenerate(data_root, ann, wanted)  # another process may have generated it meanwhile
        if reason is not None:
            other_settings = reason.startswith(_OTHER_SETTINGS) and f"'version': {VERSION}," in reason
            refusal = (lambda: f'{ann}: the {split!r} split there was {reason}, and another process is reading '
                       'it: regenerating it would change its images under that run. Give this dataset its own '
                       'data_root (e.g. data/shapes_seed1/), or wait until the other run ends.')
            with _no_other_readers(readers, refusal) if other_settings else contextlib.nullcontext():
                print(f'[rebnn_det] {ann}: {reason}; generating it', flush=True)
                _remove_stale_temporaries(data_root, split)
                generate_shapes_split(data_root, split, num_images, img_size, max_objects, seed, classes, **knobs)
        _hold_reader_lock(readers)
    return ann


def _remove_stale_temporaries(root: str, split: str) -> None:
    """Temporary files left by a killed writer (only called under the split's lock: no live writer owns any)."""
    for folder, stem in ((osp.join(root, 'annotations'), f'.instances_{split}.json.'), (osp.join(root, split), '.')):
        if osp.isdir(folder):
            for name in os.listdir(folder):
                if (name.startswith(stem) or name == f'instances_{split}.json.tmp') and name.endswith('.tmp'):
                    with contextlib.suppress(OSError):
                        os.remove(osp.join(folder, name))
