"""The settings of the embedded shapes set, in one object: the classes, the generator knobs and their checks.

Difficulty knobs (their defaults reproduce the original set byte for byte, and an annotation json records only
the knobs that differ from the defaults): ``classes`` (any of :data:`ALL_SHAPE_CLASSES`, which adds a look-alike of
each default class), ``max_objects``, ``size_probs`` (share of small / medium / large objects), ``clutter_lines``
(range of background lines) and ``distractors`` (unlabelled class-coloured blobs). ``configs/shapes/*_hard*.py``
use them.
"""
import math
from dataclasses import dataclass, fields
from typing import Dict, Sequence, Tuple

import numpy as np

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
VERSION = 2  # bump when the generator's output changes; recorded in the annotation files
SIZE_RANGES = ((12, 30), (34, 90), (104, 124))  # side lengths of small / medium / large objects (COCO's areas)


@dataclass(frozen=True)
class ShapesSettings:
    """How a split is generated; checked on construction (``ValueError`` saying what is allowed).

    ``num_images`` of ``img_size`` px from the random stream ``seed``; up to ``max_objects`` objects of
    ``classes``; the knobs ``size_probs`` (small / medium / large), ``clutter_lines`` (lo, hi) and
    ``distractors`` (the most unlabelled blobs per image). The defaults are the original set's.
    """
    num_images: int = 600
    img_size: int = 128
    seed: int = 0
    max_objects: int = 4
    classes: Sequence[str] = tuple(SHAPE_CLASSES)
    size_probs: Sequence[float] = (0.25, 0.5, 0.25)
    clutter_lines: Sequence[int] = (3, 8)
    distractors: int = 0

    def __post_init__(self):
        check_knobs(self.classes, self.max_objects, self.size_probs, self.clutter_lines, self.distractors)
        object.__setattr__(self, 'classes', tuple(self.classes))

    def recorded(self, full: bool = False) -> dict:
        """What the annotation json records about how it was made: the knobs only where they differ from the
        defaults (so the default json is unchanged), or all of them with ``full=True``."""
        out = dict(version=VERSION, seed=self.seed, num_images=self.num_images, img_size=self.img_size,
                   max_objects=self.max_objects, classes=list(self.classes))
        for k, v in self.knobs().items():
            if full or v != DEFAULT_KNOBS[k]:
                out[k] = v
        return out

    def knobs(self) -> dict:
        """The knobs as the json records them (lists, plain numbers)."""
        return dict(size_probs=[float(p) for p in self.size_probs],
                    clutter_lines=[int(v) for v in self.clutter_lines], distractors=int(self.distractors))


_KNOB_NAMES = ('size_probs', 'clutter_lines', 'distractors')
# generator knobs beyond the class list and max_objects, with the defaults of the original set
KNOB_DEFAULTS = {f.name: f.default for f in fields(ShapesSettings) if f.name in _KNOB_NAMES}


def check_knobs(classes: Sequence[str], max_objects: int, size_probs: Sequence[float],
                clutter_lines: Sequence[int], distractors: int) -> None:
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


def check_shapes_knobs(classes: Sequence[str] = tuple(SHAPE_CLASSES), max_objects: int = 4, **knobs) -> None:
    """:func:`check_knobs` with the defaults of :class:`ShapesSettings` for what is not given."""
    ShapesSettings(classes=classes, max_objects=max_objects, **knobs)


DEFAULT_KNOBS = ShapesSettings().knobs()


def as_settings(args: tuple, kwargs: dict) -> ShapesSettings:
    """A :class:`ShapesSettings` given as itself (one positional argument) or as its fields."""
    if len(args) == 1 and not kwargs and isinstance(args[0], ShapesSettings):
        return args[0]
    return ShapesSettings(*args, **kwargs)
