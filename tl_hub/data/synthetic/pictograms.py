"""The 43 GTSRB classes as clean templates: each class's pictogram, drawn with the primitives on its sign
body, and the spec table that pairs them."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from tl_hub.data.synthetic.primitives import (
    BLACK,
    DARK_GREY,
    DIGIT_STROKE,
    GREY,
    RED,
    SHAPES,
    SIGNAL_GREEN,
    SIGNAL_RED,
    SIGNAL_YELLOW,
    WHITE,
    Color,
    Pen,
    Point,
    arc,
    arrow,
    bezier,
    rotated_ellipse,
)

_SUPERSAMPLE = 4

# --- Pictograms, drawn in the pen's local frame. ---


# Most of GTSRB's speed-limit signs, seen through its cameras, show their digits larger and bolder than the
# DIN 1451 strokes of the usual drawing: the bold drawing's digits are 1.1 times as tall and their strokes
# 0.18 of the height (0.13 in the usual one).
_BOLD_HEIGHT = 1.1
_BOLD_STROKE = 0.18


def _speed(text: str, bold: bool = False) -> Callable[[Pen], None]:
    # Digits about 0.42 of the sign's diameter tall; three digits are smaller so that they fit the disc.
    height = (1.1 if len(text) == 2 else 0.9) * (_BOLD_HEIGHT if bold else 1.0)
    stroke = _BOLD_STROKE if bold else DIGIT_STROKE
    return lambda pen: pen.number(text, 0.0, 0.0, height, BLACK, stroke)


def _speed_sign(text: str) -> _Spec:
    """A speed-limit sign in both drawings of its digits, the usual and the bold."""
    return _Spec("prohibitory", _speed(text), variants=(_speed(text, bold=True),))


def _car_rear(pen: Pen, fill: Color) -> None:
    pen.poly([(-0.34, -0.42), (0.34, -0.42), (0.48, -0.08), (-0.48, -0.08)], fill)
    pen.rect(-0.6, -0.1, 0.6, 0.28, fill)
    pen.rect(-0.55, 0.26, -0.3, 0.44, fill)
    pen.rect(0.3, 0.26, 0.55, 0.44, fill)


def _truck_rear(pen: Pen, fill: Color) -> None:
    pen.rect(-0.55, -0.7, 0.55, 0.32, fill)
    pen.rect(-0.52, 0.3, -0.22, 0.5, fill)
    pen.rect(0.22, 0.3, 0.52, 0.5, fill)


def _truck_side(pen: Pen, fill: Color) -> None:
    pen.poly([(-0.9, -0.05), (-0.8, -0.35), (-0.5, -0.35), (-0.5, 0.25), (-0.9, 0.25)], fill)
    pen.rect(-0.44, -0.48, 0.92, 0.22, fill)
    pen.rect(-0.9, 0.15, 0.92, 0.3, fill)
    for x in (-0.65, 0.42, 0.7):
        pen.disc(x, 0.33, 0.15, fill)


def _no_passing(pen: Pen) -> None:
    _car_rear(pen.sub(-0.4, 0.02, 0.6), RED)
    _car_rear(pen.sub(0.4, 0.02, 0.6), BLACK)


def _no_passing_trucks(pen: Pen) -> None:
    _truck_rear(pen.sub(-0.36, 0.0, 0.6), RED)
    _car_rear(pen.sub(0.42, 0.1, 0.5), BLACK)


def _trucks_prohibited(pen: Pen) -> None:
    _truck_side(pen.sub(0, 0.0, 0.78), BLACK)


def _no_entry(pen: Pen) -> None:
    pen.rect(-0.7, -0.17, 0.7, 0.17, WHITE)


def _end_band(pen: Pen, offsets: Sequence[float], width: float, fill: Color = BLACK) -> None:
    """Parallel stripes from top-right to bottom-left, clipped to the disc."""
    direction = np.array([-1.0, 1.0]) / math.sqrt(2)
    normal = np.array([1.0, 1.0]) / math.sqrt(2)
    radius = 0.97
    for d in offsets:
        half = math.sqrt(radius**2 - d**2) - width / 2
        c = normal * d
        pen.line([tuple(c - direction * half), tuple(c + direction * half)], width, fill, round_caps=False)


_END_STRIPES = (-0.32, -0.16, 0.0, 0.16, 0.32)


def _end_speed(pen: Pen) -> None:
    pen.number("80", 0.0, 0.0, 0.88, GREY)
    _end_band(pen, _END_STRIPES, 0.07)


# Seen from afar, as most of GTSRB's end-of-restriction signs are, the band's thin lines blur into a light
# grey band across what it ends, which stays dark: a bold black 80, two small flat cars.
_FAINT_STRIPES = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3)


def _end_speed_faint(pen: Pen) -> None:
    pen.number("80", 0.0, 0.0, 0.96, BLACK, 0.16)
    _end_band(pen, _FAINT_STRIPES, 0.04, GREY)


def _end_no_passing_faint(pen: Pen) -> None:
    _car_rear(pen.sub(-0.3, 0.02, 0.3), DARK_GREY)
    _car_rear(pen.sub(0.3, 0.02, 0.3), BLACK)
    _end_band(pen, _FAINT_STRIPES, 0.04, GREY)


def _end_all(pen: Pen) -> None:
    _end_band(pen, _END_STRIPES, 0.085)


def _end_no_passing(pen: Pen) -> None:
    _car_rear(pen.sub(-0.38, 0.02, 0.5), GREY)
    _car_rear(pen.sub(0.38, 0.02, 0.5), DARK_GREY)
    _end_band(pen, _END_STRIPES, 0.07)


def _end_no_passing_trucks(pen: Pen) -> None:
    _truck_rear(pen.sub(-0.36, 0.0, 0.52), GREY)
    _car_rear(pen.sub(0.4, 0.1, 0.42), DARK_GREY)
    _end_band(pen, _END_STRIPES, 0.07)


def _right_of_way(pen: Pen) -> None:
    # The priority road, broad and pointed, crossed by the narrower side road.
    pen.poly([(0.0, -0.85), (0.22, -0.6), (0.3, 0.7), (-0.3, 0.7), (-0.22, -0.6)], BLACK)
    pen.poly([(-0.62, -0.3), (0.0, -0.42), (0.62, -0.3), (0.62, -0.02), (0.0, 0.1), (-0.62, -0.02)], BLACK)


def _caution(pen: Pen) -> None:
    pen.poly([(-0.16, -0.82), (0.16, -0.82), (0.08, 0.3), (-0.08, 0.3)], BLACK)
    pen.disc(0, 0.56, 0.14, BLACK)


def _curve_left(pen: Pen) -> None:
    pen.line([(0.2, 0.72), *arc(-0.15, -0.12, 0.35, 0, -90), (-0.52, -0.47)], 0.26, BLACK, round_caps=False)


def _double_curve(pen: Pen) -> None:
    # First left: the road comes up on the right, swings left, and leaves at the top bending right again.
    path = [
        (0.2, 0.76),
        *bezier((0.2, 0.22), (0.2, -0.02), (-0.18, 0.12), (-0.18, -0.14)),
        *bezier((-0.18, -0.4), (-0.18, -0.62), (-0.1, -0.7), (0.1, -0.78)),
    ]
    pen.line(path, 0.22, BLACK, round_caps=False)


def _double_curve_stepped(pen: Pen) -> None:
    # As most of GTSRB's double-curve signs draw it: bold, up from the bottom right, a short step to the left
    # and up again, bending a little to the right at the top.
    path = [(0.36, 0.76), (0.36, 0.14), (-0.16, -0.08), (-0.16, -0.6), (-0.08, -0.78)]
    pen.line(path, 0.26, BLACK, round_caps=False)


def _bumpy_road(pen: Pen) -> None:
    xs = np.linspace(-0.85, 0.85, 40)
    top = 0.42 - 0.5 * np.exp(-(((xs + 0.42) / 0.22) ** 2)) - 0.5 * np.exp(-(((xs - 0.42) / 0.22) ** 2))
    pen.poly([*zip(xs, top, strict=True), (0.85, 0.62), (-0.85, 0.62)], BLACK)


def _slippery_road(pen: Pen) -> None:
    car = pen.sub(0.0, -0.3, 0.62)
    car.poly(rotated_ellipse(0, 0, 0.72, 0.24, -12), BLACK)
    car.poly([(-0.4, -0.08), (-0.25, -0.5), (0.35, -0.6), (0.45, -0.2)], BLACK)
    car.disc(-0.45, 0.28, 0.16, BLACK)
    car.disc(0.5, 0.1, 0.16, BLACK)
    xs = np.linspace(-0.55, 0.55, 20)
    for y0, phase in ((0.25, 0.0), (0.45, math.pi)):
        pen.line(
            [(x, y0 + 0.08 * x + 0.1 * math.sin(6 * x + phase)) for x in xs], 0.09, BLACK, round_caps=False
        )


def _slippery_road_skidding(pen: Pen) -> None:
    # As most of GTSRB's slippery-road signs draw it: the car seen from behind, turned as it skids, a dark
    # body under a light rear window, with thin tracks below.
    def turned(points: Sequence[Point]) -> list[Point]:
        c, s = math.cos(math.radians(8)), math.sin(math.radians(8))
        return [(x * c - (y + 0.25) * s, x * s + (y + 0.25) * c - 0.25) for x, y in points]

    pen.poly(turned([(-0.36, -0.56), (0.3, -0.56), (0.44, -0.2), (-0.5, -0.2)]), BLACK)
    pen.poly(turned([(-0.28, -0.48), (0.23, -0.48), (0.32, -0.28), (-0.39, -0.28)]), WHITE)
    pen.poly(turned([(-0.58, -0.24), (0.5, -0.24), (0.5, 0.0), (-0.58, 0.0)]), BLACK)
    for x0, x1 in ((-0.55, -0.32), (0.26, 0.48)):
        pen.poly(turned([(x0, -0.02), (x1, -0.02), (x1, 0.12), (x0, 0.12)]), BLACK)
    for dx in (-0.2, 0.16):
        pen.line(bezier((dx, 0.18), (dx - 0.3, 0.34), (dx + 0.24, 0.5), (dx - 0.1, 0.7)), 0.05, BLACK)


def _road_narrows_right(pen: Pen) -> None:
    pen.line([(-0.32, 0.75), (-0.32, -0.72)], 0.22, BLACK, round_caps=False)
    path = [(0.38, 0.75), *bezier((0.38, 0.15), (0.38, -0.02), (0.1, -0.05), (0.1, -0.25)), (0.1, -0.72)]
    pen.line(path, 0.22, BLACK, round_caps=False)


def _road_work(pen: Pen) -> None:
    # A slim worker faces right, his shovel in the broad heap of earth that fills the lower right.
    pen.disc(-0.18, -0.48, 0.13, BLACK)
    pen.line([(-0.2, -0.3), (-0.32, 0.14)], 0.2, BLACK)
    pen.line([(-0.32, 0.14), (-0.52, 0.72)], 0.12, BLACK)
    pen.line([(-0.32, 0.14), (-0.14, 0.42), (-0.14, 0.72)], 0.12, BLACK)
    pen.line([(-0.2, -0.24), (-0.04, 0.02), (0.06, 0.06)], 0.1, BLACK)
    pen.line([(-0.1, -0.12), (0.22, 0.56)], 0.06, BLACK)
    pen.poly([(0.0, 0.74), (0.4, 0.32), (0.5, 0.26), (0.6, 0.32), (1.0, 0.74)], BLACK)


def _road_work_bent(pen: Pen) -> None:
    # The worker most of GTSRB's road-work signs show: bold, bent forward over his shovel, legs apart.
    pen.disc(0.02, -0.46, 0.15, BLACK)
    pen.line([(-0.06, -0.26), (-0.34, 0.16)], 0.26, BLACK)
    pen.line([(-0.34, 0.16), (-0.6, 0.72)], 0.16, BLACK)
    pen.line([(-0.34, 0.16), (-0.12, 0.44), (-0.12, 0.72)], 0.16, BLACK)
    pen.line([(-0.08, -0.2), (0.1, 0.06), (0.2, 0.1)], 0.13, BLACK)
    pen.line([(0.04, -0.06), (0.34, 0.56)], 0.09, BLACK)
    pen.poly([(0.12, 0.74), (0.46, 0.36), (0.56, 0.3), (0.66, 0.36), (1.0, 0.74)], BLACK)


def _traffic_signals(pen: Pen) -> None:
    for y, color in ((-0.5, SIGNAL_RED), (0.02, SIGNAL_YELLOW), (0.54, SIGNAL_GREEN)):
        pen.disc(0, y, 0.22, BLACK)
        pen.disc(0, y, 0.19, color)


def _walker(pen: Pen) -> None:
    pen.disc(0.05, -0.68, 0.15, BLACK)
    pen.line([(0.0, -0.45), (-0.05, 0.1)], 0.26, BLACK)
    pen.line([(-0.05, 0.1), (-0.35, 0.75)], 0.17, BLACK)
    pen.line([(-0.05, 0.1), (0.15, 0.4), (0.3, 0.75)], 0.17, BLACK)
    pen.line([(0.0, -0.4), (-0.3, -0.05)], 0.13, BLACK)
    pen.line([(0.0, -0.4), (0.3, -0.1)], 0.13, BLACK)


def _pedestrians(pen: Pen) -> None:
    # One walker in thin strokes with a long stride, as on GTSRB's signs (the children's walkers are bolder).
    pen.disc(0.0, -0.66, 0.13, BLACK)
    pen.line([(0.0, -0.46), (-0.02, 0.12)], 0.16, BLACK)
    pen.line([(-0.02, 0.12), (-0.22, 0.42), (-0.4, 0.76)], 0.11, BLACK)
    pen.line([(-0.02, 0.12), (0.18, 0.44), (0.34, 0.76)], 0.11, BLACK)
    pen.line([(0.0, -0.38), (-0.2, -0.1), (-0.3, 0.1)], 0.09, BLACK)
    pen.line([(0.0, -0.38), (0.22, -0.12), (0.3, 0.08)], 0.09, BLACK)


def _children(pen: Pen) -> None:
    # Drawn facing right and mirrored in the spec: the larger child runs on the right, holding the smaller.
    _walker(pen.sub(-0.3, 0.06, 0.86))
    _walker(pen.sub(0.35, 0.2, 0.7))
    pen.line([(-0.05, -0.25), (0.2, -0.05)], 0.1, BLACK)


def _bicycle(pen: Pen) -> None:
    # Thin lines, as on the sign: blurred, bold wheels look like any dark mass low in the triangle.
    for x in (-0.45, 0.45):
        pen.ring(x, 0.38, 0.28, 0.07, BLACK)
    frame = [(-0.45, 0.38), (-0.15, -0.1), (0.3, -0.1), (0.45, 0.38)]
    pen.line(frame, 0.07, BLACK)
    pen.line([(-0.15, -0.1), (0.0, 0.38), (0.3, -0.1)], 0.07, BLACK)
    pen.line([(-0.25, -0.22), (-0.05, -0.22)], 0.08, BLACK)
    pen.line([(0.3, -0.1), (0.25, -0.3), (0.4, -0.33)], 0.07, BLACK)


def _snowflake(pen: Pen) -> None:
    center = (0.0, 0.1)
    for k in range(6):
        a = math.radians(90 + 60 * k)
        d = (math.cos(a), math.sin(a))
        tip = (center[0] + 0.6 * d[0], center[1] + 0.6 * d[1])
        pen.line([center, tip], 0.12, BLACK)
        mid = (center[0] + 0.36 * d[0], center[1] + 0.36 * d[1])
        for side in (-1, 1):
            b = a + side * math.radians(45)
            pen.line([mid, (mid[0] + 0.24 * math.cos(b), mid[1] + 0.24 * math.sin(b))], 0.09, BLACK)
    pen.disc(*center, 0.14, BLACK)


def _deer(pen: Pen) -> None:
    pen.poly(rotated_ellipse(-0.05, 0.1, 0.45, 0.17, -28), BLACK)
    pen.line([(0.25, -0.05), (0.42, -0.4)], 0.16, BLACK)
    pen.poly(rotated_ellipse(0.52, -0.42, 0.16, 0.08, 25), BLACK)
    pen.line([(0.4, -0.48), (0.3, -0.78)], 0.06, BLACK)
    pen.line([(0.36, -0.62), (0.18, -0.7)], 0.06, BLACK)
    pen.line([(0.3, 0.0), (0.55, 0.05), (0.7, 0.3)], 0.08, BLACK)
    pen.line([(0.25, 0.0), (0.4, 0.25), (0.5, 0.42)], 0.08, BLACK)
    pen.line([(-0.38, 0.25), (-0.62, 0.5), (-0.82, 0.68)], 0.09, BLACK)
    pen.line([(-0.35, 0.28), (-0.5, 0.6), (-0.55, 0.75)], 0.09, BLACK)


def _turn_right(pen: Pen) -> None:
    path = [(-0.28, 0.78), (-0.28, 0.05), *arc(0.1, 0.05, 0.38, 180, 270), (0.78, -0.33)]
    arrow(pen, path, 0.26, 0.7, 0.42, WHITE)


def _ahead_only(pen: Pen) -> None:
    arrow(pen, [(0.0, 0.8), (0.0, -0.8)], 0.27, 0.78, 0.5, WHITE)


def _straight_or_right(pen: Pen) -> None:
    arrow(pen, [(-0.22, 0.8), (-0.22, -0.8)], 0.24, 0.66, 0.42, WHITE)
    path = [(-0.22, 0.45), *arc(0.1, 0.45, 0.32, 180, 270), (0.8, 0.13)]
    arrow(pen, path, 0.22, 0.6, 0.38, WHITE)


def _keep_right(pen: Pen) -> None:
    arrow(pen, [(-0.5, -0.5), (0.56, 0.56)], 0.27, 0.78, 0.5, WHITE)


def _roundabout(turn: float = 0.0) -> Callable[[Pen], None]:
    """Three arrows around the centre, their heads at about 3, 7 and 11 o'clock, turned by `turn` degrees
    (negative: counter-clockwise on screen). GTSRB's roundabout signs come in two layouts: this one, and one
    turned by -70 degrees, its heads at about half past 12, 4 and 8 o'clock."""

    def draw(pen: Pen) -> None:
        for k in range(3):
            # Decreasing angle runs counter-clockwise on screen, the direction of German roundabout traffic.
            start = 80 + 120 * k + turn
            path = arc(0.0, 0.0, 0.6, start, start - 85, 16)
            arrow(pen, path, 0.17, 0.4, 0.26, WHITE)

    return draw


class _Spec(NamedTuple):
    shape: str
    pictogram: Callable[[Pen], None] | None = None
    mirrored: bool = False
    # other drawings of the same sign, as real signs of the class show it; a render picks one of them or
    # `pictogram` at random
    variants: tuple[Callable[[Pen], None], ...] = ()


_SIGNS: dict[int, _Spec] = {
    0: _speed_sign("20"),
    1: _speed_sign("30"),
    2: _speed_sign("50"),
    3: _speed_sign("60"),
    4: _speed_sign("70"),
    5: _speed_sign("80"),
    6: _Spec("end", _end_speed, variants=(_end_speed_faint,)),
    7: _speed_sign("100"),
    8: _speed_sign("120"),
    9: _Spec("prohibitory", _no_passing),
    10: _Spec("prohibitory", _no_passing_trucks),
    11: _Spec("warning", _right_of_way),
    12: _Spec("priority"),
    13: _Spec("yield"),
    14: _Spec("octagon", lambda pen: pen.text("STOP", (-0.74, -0.28, 0.74, 0.28), WHITE)),
    15: _Spec("prohibitory"),
    16: _Spec("prohibitory", _trucks_prohibited),
    17: _Spec("red_disc", _no_entry),
    18: _Spec("warning", _caution),
    19: _Spec("warning", _curve_left),
    20: _Spec("warning", _curve_left, mirrored=True),
    21: _Spec("warning", _double_curve, variants=(_double_curve_stepped,)),
    22: _Spec("warning", _bumpy_road),
    23: _Spec("warning", _slippery_road, variants=(_slippery_road_skidding,)),
    24: _Spec("warning", _road_narrows_right),
    25: _Spec("warning", _road_work, variants=(_road_work_bent,)),
    26: _Spec("warning", _traffic_signals),
    27: _Spec("warning", _pedestrians),
    28: _Spec("warning", _children, mirrored=True),
    29: _Spec("warning", _bicycle),
    30: _Spec("warning", _snowflake),
    31: _Spec("warning", _deer, mirrored=True),  # GTSRB's deer leaps to the left
    32: _Spec("end", _end_all),
    33: _Spec("mandatory", _turn_right),
    34: _Spec("mandatory", _turn_right, mirrored=True),
    35: _Spec("mandatory", _ahead_only),
    36: _Spec("mandatory", _straight_or_right),
    37: _Spec("mandatory", _straight_or_right, mirrored=True),
    38: _Spec("mandatory", _keep_right),
    39: _Spec("mandatory", _keep_right, mirrored=True),
    40: _Spec("mandatory", _roundabout(), variants=(_roundabout(-70.0),)),
    41: _Spec("end", _end_no_passing, variants=(_end_no_passing_faint,)),
    42: _Spec("end", _end_no_passing_trucks),
}


def variants(class_id: int) -> int:
    """How many drawings of the class's sign there are (`template`'s `variant` runs below this)."""
    return 1 + len(_SIGNS[class_id].variants)


@functools.cache
def template(class_id: int, res: int, variant: int = 0) -> Image.Image:
    """Clean sign filling a res x res square, drawn at 4x and box-filtered down for antialiasing: the class's
    drawing number `variant` (0: its usual one; see `variants`).

    The result has premultiplied alpha ("RGBa") so that warping it needs no conversion and compositing
    is a single multiply-add.
    """
    spec = _SIGNS[class_id]
    pictogram = (spec.pictogram, *spec.variants)[variant]
    big = res * _SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pictogram_pen = SHAPES[spec.shape](Pen(image, big / 2, (big / 2, big / 2)))
    if pictogram is not None:
        pictogram(pictogram_pen)
    if spec.mirrored:
        image = ImageOps.mirror(image)
    return image.reduce(_SUPERSAMPLE).convert("RGBa")
