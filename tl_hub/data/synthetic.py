"""Procedural renderer for the 43 GTSRB traffic-sign classes, for training without the real dataset.

Each class has a clean template (shape, colours, pictogram) drawn once with PIL at 4x supersampling and
cached. Every image then warps a template (scale, offset, rotation, viewing angle), composites it over a
random scene (sky, foliage, facades, gradients, a post, neighbouring signs) and applies the damage seen
in GTSRB crops: faded paint, dark or washed-out exposure, colour casts, uneven light, blur, low source
resolution, sensor noise and JPEG artefacts.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from tqdm import tqdm

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES

logger = logging.getLogger(__name__)

_NUM_CLASSES = len(GTSRB_CLASS_NAMES)
_MIN_SIZE = 8
_SUPERSAMPLE = 4

_Color = tuple[int, int, int]
_Point = tuple[float, float]

_WHITE: _Color = (245, 245, 240)
_BLACK: _Color = (22, 22, 24)
_RED: _Color = (200, 28, 38)
_BLUE: _Color = (22, 78, 170)
_YELLOW: _Color = (245, 182, 24)
_GREY: _Color = (112, 112, 112)
_DARK_GREY: _Color = (70, 70, 70)
_SIGNAL_RED: _Color = (210, 30, 30)
_SIGNAL_YELLOW: _Color = (240, 190, 20)
_SIGNAL_GREEN: _Color = (20, 160, 80)


class _Pen:
    """Draws in a local frame where (-1, -1)..(1, 1) is a square region of the template image."""

    def __init__(self, image: Image.Image, scale: float, origin: _Point) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.scale = scale
        self.origin = origin

    def sub(self, cx: float, cy: float, r: float) -> _Pen:
        ox, oy = self.pt(cx, cy)
        return _Pen(self.image, self.scale * r, (ox, oy))

    def pt(self, x: float, y: float) -> _Point:
        return (self.origin[0] + x * self.scale, self.origin[1] + y * self.scale)

    def poly(self, points: Sequence[_Point], fill: _Color) -> None:
        self.draw.polygon([self.pt(x, y) for x, y in points], fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: _Color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: _Color) -> None:
        (ax, ay), (bx, by) = self.pt(x - rx, y - ry), self.pt(x + rx, y + ry)
        self.draw.ellipse((ax, ay, bx, by), fill=fill)

    def disc(self, x: float, y: float, r: float, fill: _Color) -> None:
        self.ellipse(x, y, r, r, fill)

    def line(self, points: Sequence[_Point], width: float, fill: _Color, round_caps: bool = True) -> None:
        pixels = [self.pt(x, y) for x, y in points]
        self.draw.line(pixels, fill=fill, width=max(1, round(width * self.scale)), joint="curve")
        if round_caps:
            for x, y in (points[0], points[-1]):
                self.disc(x, y, width / 2, fill)

    def ring(self, x: float, y: float, r: float, width: float, fill: _Color) -> None:
        (ax, ay), (bx, by) = self.pt(x - r, y - r), self.pt(x + r, y + r)
        self.draw.ellipse((ax, ay, bx, by), outline=fill, width=max(1, round(width * self.scale)))

    def text(self, text: str, box: tuple[float, float, float, float], fill: _Color) -> None:
        """Bold text stretched to fill `box`; stretching condenses the glyphs like DIN 1451 sign digits."""
        mask = _text_mask(text)
        (ax, ay), (bx, by) = self.pt(box[0], box[1]), self.pt(box[2], box[3])
        w, h = round(bx - ax), round(by - ay)
        mask = mask.resize((w, h), Image.LANCZOS)
        self.image.paste(Image.new("RGBA", (w, h), (*fill, 255)), (round(ax), round(ay)), mask)


@functools.lru_cache(maxsize=32)
def _text_mask(text: str) -> Image.Image:
    # Pillow's bundled font is always available; a stroke turns its regular weight into sign-like bold.
    font_size = 200
    stroke = 13
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return mask


def _arc(cx: float, cy: float, r: float, deg0: float, deg1: float, n: int = 24) -> list[_Point]:
    """Points on a circle; angles in degrees with y pointing down, so increasing angle turns clockwise."""
    angles = np.radians(np.linspace(deg0, deg1, n))
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def _bezier(p0: _Point, p1: _Point, p2: _Point, p3: _Point, n: int = 20) -> list[_Point]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return [(float(x), float(y)) for x, y in pts]


def _regular(n: int, r: float, deg0: float, cx: float = 0.0, cy: float = 0.0) -> list[_Point]:
    """Vertices of a regular n-gon with circumradius r, the first at angle deg0."""
    angles = np.radians(deg0 + 360.0 * np.arange(n) / n)
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def _rotated_ellipse(cx: float, cy: float, rx: float, ry: float, deg: float, n: int = 28) -> list[_Point]:
    a = math.radians(deg)
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return [
        (cx + xi * math.cos(a) - yi * math.sin(a), cy + xi * math.sin(a) + yi * math.cos(a))
        for xi, yi in zip(x, y, strict=True)
    ]


def _arrow(
    pen: _Pen, path: Sequence[_Point], width: float, head_w: float, head_l: float, fill: _Color
) -> None:
    """Polyline shaft along `path` with a triangular head whose tip is the last point."""
    tip = np.array(path[-1])
    d = tip - np.array(path[-2])
    d /= np.linalg.norm(d)
    base = tip - d * head_l
    perp = np.array([-d[1], d[0]]) * head_w / 2
    shaft = [*path[:-1], tuple(base + d * 0.05)]
    pen.line(shaft, width, fill, round_caps=False)
    pen.poly([tuple(tip), tuple(base + perp), tuple(base - perp)], fill)


# --- Sign shapes: each draws the sign body and returns the pen for its pictogram area. ---


def _shape_prohibitory(pen: _Pen) -> _Pen:
    pen.disc(0, 0, 1.0, _WHITE)
    pen.disc(0, 0, 0.96, _RED)
    pen.disc(0, 0, 0.75, _WHITE)
    return pen.sub(0, 0, 0.75)


def _shape_red_disc(pen: _Pen) -> _Pen:
    pen.disc(0, 0, 1.0, _WHITE)
    pen.disc(0, 0, 0.96, _RED)
    return pen.sub(0, 0, 0.96)


def _shape_end(pen: _Pen) -> _Pen:
    pen.disc(0, 0, 1.0, _DARK_GREY)
    pen.disc(0, 0, 0.955, _WHITE)
    return pen.sub(0, 0, 0.955)


def _shape_mandatory(pen: _Pen) -> _Pen:
    pen.disc(0, 0, 1.0, _WHITE)
    pen.disc(0, 0, 0.96, _BLUE)
    return pen.sub(0, 0, 0.96)


def _rounded_regular(
    pen: _Pen, n: int, inradius: float, deg0: float, cy: float, corner: float, fill: _Color
) -> None:
    """Regular polygon with rounded corners: the inset polygon grown by a disc of radius `corner`."""
    inner_r = (inradius - corner) / math.cos(math.pi / n)
    pts = _regular(n, inner_r, deg0, 0.0, cy)
    pen.poly(pts, fill)
    pen.line([*pts, pts[0], pts[1]], 2 * corner, fill, round_caps=False)
    for x, y in pts:
        pen.disc(x, y, corner, fill)


# An equilateral triangle of side 2 (the full template width) has height sqrt(3) and inradius 1/sqrt(3).
# Centred vertically in the template, its incentre, a third of the height above the base, is at _TRI_CY.
_TRI_IN = 1 / math.sqrt(3)
_TRI_CY = math.sqrt(3) / 2 - _TRI_IN


def _shape_warning(pen: _Pen) -> _Pen:
    _rounded_regular(pen, 3, _TRI_IN, -90, _TRI_CY, 0.12, _WHITE)
    _rounded_regular(pen, 3, _TRI_IN - 0.035, -90, _TRI_CY, 0.1, _RED)
    _rounded_regular(pen, 3, _TRI_IN - 0.195, -90, _TRI_CY, 0.04, _WHITE)
    return pen.sub(0, _TRI_CY + 0.01, 0.48)


def _shape_yield(pen: _Pen) -> _Pen:
    _rounded_regular(pen, 3, _TRI_IN, 90, -_TRI_CY, 0.12, _WHITE)
    _rounded_regular(pen, 3, _TRI_IN - 0.035, 90, -_TRI_CY, 0.1, _RED)
    _rounded_regular(pen, 3, _TRI_IN - 0.235, 90, -_TRI_CY, 0.04, _WHITE)
    return pen


def _shape_priority(pen: _Pen) -> _Pen:
    diamond = [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)]
    pen.poly(diamond, _DARK_GREY)
    pen.poly([(x * 0.95, y * 0.95) for x, y in diamond], _WHITE)
    pen.poly([(x * 0.64, y * 0.64) for x, y in diamond], _YELLOW)
    return pen


def _shape_octagon(pen: _Pen) -> _Pen:
    # Circumradius chosen so the flat edges of the octagon touch the template border.
    r = 1 / math.cos(math.pi / 8)
    pen.poly(_regular(8, r, 22.5), _WHITE)
    pen.poly(_regular(8, r * 0.95, 22.5), _RED)
    inner_edge = _regular(8, r * 0.87, 22.5)
    pen.line([*inner_edge, inner_edge[0]], 0.035, _WHITE, round_caps=False)
    return pen


_SHAPES: dict[str, Callable[[_Pen], _Pen]] = {
    "prohibitory": _shape_prohibitory,
    "red_disc": _shape_red_disc,
    "end": _shape_end,
    "mandatory": _shape_mandatory,
    "warning": _shape_warning,
    "yield": _shape_yield,
    "priority": _shape_priority,
    "octagon": _shape_octagon,
}


# --- Pictograms, drawn in the pen's local frame. ---


def _speed(text: str) -> Callable[[_Pen], None]:
    # Three digits get a wider, flatter box so that their strokes stay as thick as two digits'.
    box = (-0.66, -0.48, 0.66, 0.48) if len(text) == 2 else (-0.82, -0.42, 0.82, 0.42)
    return lambda pen: pen.text(text, box, _BLACK)


def _car_rear(pen: _Pen, fill: _Color) -> None:
    pen.poly([(-0.34, -0.42), (0.34, -0.42), (0.48, -0.08), (-0.48, -0.08)], fill)
    pen.rect(-0.6, -0.1, 0.6, 0.28, fill)
    pen.rect(-0.55, 0.26, -0.3, 0.44, fill)
    pen.rect(0.3, 0.26, 0.55, 0.44, fill)


def _truck_rear(pen: _Pen, fill: _Color) -> None:
    pen.rect(-0.55, -0.7, 0.55, 0.32, fill)
    pen.rect(-0.52, 0.3, -0.22, 0.5, fill)
    pen.rect(0.22, 0.3, 0.52, 0.5, fill)


def _truck_side(pen: _Pen, fill: _Color) -> None:
    pen.poly([(-0.9, -0.05), (-0.8, -0.35), (-0.5, -0.35), (-0.5, 0.25), (-0.9, 0.25)], fill)
    pen.rect(-0.44, -0.48, 0.92, 0.22, fill)
    pen.rect(-0.9, 0.15, 0.92, 0.3, fill)
    for x in (-0.65, 0.42, 0.7):
        pen.disc(x, 0.33, 0.15, fill)


def _no_passing(pen: _Pen) -> None:
    _car_rear(pen.sub(-0.4, 0.02, 0.6), _RED)
    _car_rear(pen.sub(0.4, 0.02, 0.6), _BLACK)


def _no_passing_trucks(pen: _Pen) -> None:
    _truck_rear(pen.sub(-0.36, 0.0, 0.6), _RED)
    _car_rear(pen.sub(0.42, 0.1, 0.5), _BLACK)


def _trucks_prohibited(pen: _Pen) -> None:
    _truck_side(pen.sub(0, 0.0, 0.78), _BLACK)


def _no_entry(pen: _Pen) -> None:
    pen.rect(-0.7, -0.17, 0.7, 0.17, _WHITE)


def _end_band(pen: _Pen, offsets: Sequence[float], width: float) -> None:
    """Parallel stripes from top-right to bottom-left, clipped to the disc."""
    direction = np.array([-1.0, 1.0]) / math.sqrt(2)
    normal = np.array([1.0, 1.0]) / math.sqrt(2)
    radius = 0.97
    for d in offsets:
        half = math.sqrt(radius**2 - d**2) - width / 2
        c = normal * d
        pen.line([tuple(c - direction * half), tuple(c + direction * half)], width, _BLACK, round_caps=False)


_END_STRIPES = (-0.32, -0.16, 0.0, 0.16, 0.32)


def _end_speed(pen: _Pen) -> None:
    pen.text("80", (-0.62, -0.46, 0.62, 0.46), _GREY)
    _end_band(pen, _END_STRIPES, 0.07)


def _end_all(pen: _Pen) -> None:
    _end_band(pen, (-0.32, -0.16, 0.0, 0.16, 0.32), 0.085)


def _end_no_passing(pen: _Pen) -> None:
    _car_rear(pen.sub(-0.38, 0.02, 0.5), _GREY)
    _car_rear(pen.sub(0.38, 0.02, 0.5), _DARK_GREY)
    _end_band(pen, _END_STRIPES, 0.07)


def _end_no_passing_trucks(pen: _Pen) -> None:
    _truck_rear(pen.sub(-0.36, 0.0, 0.52), _GREY)
    _car_rear(pen.sub(0.4, 0.1, 0.42), _DARK_GREY)
    _end_band(pen, _END_STRIPES, 0.07)


def _right_of_way(pen: _Pen) -> None:
    pen.poly([(0.0, -0.95), (0.17, -0.72), (0.26, 0.72), (-0.26, 0.72), (-0.17, -0.72)], _BLACK)
    pen.poly([(-0.62, -0.34), (0.0, -0.46), (0.62, -0.34), (0.62, -0.1), (0.0, 0.02), (-0.62, -0.1)], _BLACK)


def _caution(pen: _Pen) -> None:
    pen.poly([(-0.16, -0.82), (0.16, -0.82), (0.08, 0.3), (-0.08, 0.3)], _BLACK)
    pen.disc(0, 0.56, 0.14, _BLACK)


def _curve_left(pen: _Pen) -> None:
    pen.line([(0.2, 0.72), *_arc(-0.15, -0.12, 0.35, 0, -90), (-0.52, -0.47)], 0.26, _BLACK, round_caps=False)


def _double_curve(pen: _Pen) -> None:
    path = [
        (0.3, 0.74),
        *_bezier((0.3, 0.4), (0.3, 0.1), (-0.25, 0.25), (-0.25, -0.05)),
        *_bezier((-0.25, -0.05), (-0.25, -0.35), (0.3, -0.25), (0.3, -0.6)),
        (0.3, -0.78),
    ]
    pen.line(path, 0.22, _BLACK, round_caps=False)


def _bumpy_road(pen: _Pen) -> None:
    xs = np.linspace(-0.85, 0.85, 40)
    top = 0.42 - 0.5 * np.exp(-(((xs + 0.42) / 0.22) ** 2)) - 0.5 * np.exp(-(((xs - 0.42) / 0.22) ** 2))
    pen.poly([*zip(xs, top, strict=True), (0.85, 0.62), (-0.85, 0.62)], _BLACK)


def _slippery_road(pen: _Pen) -> None:
    car = pen.sub(0.0, -0.3, 0.62)
    car.poly(_rotated_ellipse(0, 0, 0.72, 0.24, -12), _BLACK)
    car.poly([(-0.4, -0.08), (-0.25, -0.5), (0.35, -0.6), (0.45, -0.2)], _BLACK)
    car.disc(-0.45, 0.28, 0.16, _BLACK)
    car.disc(0.5, 0.1, 0.16, _BLACK)
    xs = np.linspace(-0.55, 0.55, 20)
    for y0, phase in ((0.25, 0.0), (0.45, math.pi)):
        pen.line(
            [(x, y0 + 0.08 * x + 0.1 * math.sin(6 * x + phase)) for x in xs], 0.09, _BLACK, round_caps=False
        )


def _road_narrows_right(pen: _Pen) -> None:
    pen.line([(-0.32, 0.75), (-0.32, -0.72)], 0.22, _BLACK, round_caps=False)
    path = [(0.38, 0.75), *_bezier((0.38, 0.15), (0.38, -0.02), (0.1, -0.05), (0.1, -0.25)), (0.1, -0.72)]
    pen.line(path, 0.22, _BLACK, round_caps=False)


def _road_work(pen: _Pen) -> None:
    pen.disc(-0.05, -0.62, 0.15, _BLACK)
    pen.line([(-0.1, -0.38), (0.1, 0.15)], 0.26, _BLACK)
    pen.line([(0.1, 0.15), (-0.25, 0.72)], 0.16, _BLACK)
    pen.line([(0.1, 0.15), (0.35, 0.4), (0.3, 0.72)], 0.16, _BLACK)
    pen.line([(-0.08, -0.3), (-0.45, -0.05), (-0.55, 0.2)], 0.12, _BLACK)
    pen.line([(-0.75, 0.1), (-0.35, 0.68)], 0.08, _BLACK)
    pen.poly([(0.35, 0.74), (0.62, 0.32), (0.92, 0.74)], _BLACK)


def _traffic_signals(pen: _Pen) -> None:
    for y, color in ((-0.5, _SIGNAL_RED), (0.02, _SIGNAL_YELLOW), (0.54, _SIGNAL_GREEN)):
        pen.disc(0, y, 0.22, _BLACK)
        pen.disc(0, y, 0.19, color)


def _walker(pen: _Pen) -> None:
    pen.disc(0.05, -0.68, 0.15, _BLACK)
    pen.line([(0.0, -0.45), (-0.05, 0.1)], 0.26, _BLACK)
    pen.line([(-0.05, 0.1), (-0.35, 0.75)], 0.17, _BLACK)
    pen.line([(-0.05, 0.1), (0.15, 0.4), (0.3, 0.75)], 0.17, _BLACK)
    pen.line([(0.0, -0.4), (-0.3, -0.05)], 0.13, _BLACK)
    pen.line([(0.0, -0.4), (0.3, -0.1)], 0.13, _BLACK)


def _pedestrians(pen: _Pen) -> None:
    _walker(pen.sub(0.0, 0.0, 1.0))


def _children(pen: _Pen) -> None:
    _walker(pen.sub(-0.3, 0.06, 0.86))
    _walker(pen.sub(0.35, 0.2, 0.7))


def _bicycle(pen: _Pen) -> None:
    for x in (-0.45, 0.45):
        pen.ring(x, 0.35, 0.32, 0.1, _BLACK)
    frame = [(-0.45, 0.35), (-0.15, -0.15), (0.3, -0.15), (0.45, 0.35)]
    pen.line(frame, 0.09, _BLACK)
    pen.line([(-0.15, -0.15), (0.0, 0.35), (0.3, -0.15)], 0.09, _BLACK)
    pen.line([(-0.25, -0.28), (-0.05, -0.28)], 0.1, _BLACK)
    pen.line([(0.3, -0.15), (0.25, -0.35), (0.4, -0.38)], 0.09, _BLACK)


def _snowflake(pen: _Pen) -> None:
    center = (0.0, 0.02)
    for k in range(6):
        a = math.radians(90 + 60 * k)
        d = (math.cos(a), math.sin(a))
        tip = (center[0] + 0.72 * d[0], center[1] + 0.72 * d[1])
        pen.line([center, tip], 0.12, _BLACK)
        mid = (center[0] + 0.42 * d[0], center[1] + 0.42 * d[1])
        for side in (-1, 1):
            b = a + side * math.radians(45)
            pen.line([mid, (mid[0] + 0.24 * math.cos(b), mid[1] + 0.24 * math.sin(b))], 0.09, _BLACK)
    pen.disc(*center, 0.14, _BLACK)


def _deer(pen: _Pen) -> None:
    pen.poly(_rotated_ellipse(-0.05, 0.1, 0.45, 0.17, -28), _BLACK)
    pen.line([(0.25, -0.05), (0.42, -0.4)], 0.16, _BLACK)
    pen.poly(_rotated_ellipse(0.52, -0.42, 0.16, 0.08, 25), _BLACK)
    pen.line([(0.4, -0.48), (0.3, -0.78)], 0.06, _BLACK)
    pen.line([(0.36, -0.62), (0.18, -0.7)], 0.06, _BLACK)
    pen.line([(0.3, 0.0), (0.55, 0.05), (0.7, 0.3)], 0.08, _BLACK)
    pen.line([(0.25, 0.0), (0.4, 0.25), (0.5, 0.42)], 0.08, _BLACK)
    pen.line([(-0.38, 0.25), (-0.62, 0.5), (-0.82, 0.68)], 0.09, _BLACK)
    pen.line([(-0.35, 0.28), (-0.5, 0.6), (-0.55, 0.75)], 0.09, _BLACK)


def _turn_right(pen: _Pen) -> None:
    path = [(-0.28, 0.78), (-0.28, 0.05), *_arc(0.1, 0.05, 0.38, 180, 270), (0.78, -0.33)]
    _arrow(pen, path, 0.26, 0.7, 0.42, _WHITE)


def _ahead_only(pen: _Pen) -> None:
    _arrow(pen, [(0.0, 0.8), (0.0, -0.8)], 0.27, 0.78, 0.5, _WHITE)


def _straight_or_right(pen: _Pen) -> None:
    _arrow(pen, [(-0.22, 0.8), (-0.22, -0.8)], 0.24, 0.66, 0.42, _WHITE)
    path = [(-0.22, 0.45), *_arc(0.1, 0.45, 0.32, 180, 270), (0.8, 0.13)]
    _arrow(pen, path, 0.22, 0.6, 0.38, _WHITE)


def _keep_right(pen: _Pen) -> None:
    _arrow(pen, [(-0.5, -0.5), (0.56, 0.56)], 0.27, 0.78, 0.5, _WHITE)


def _roundabout(pen: _Pen) -> None:
    for k in range(3):
        # Decreasing angle runs counter-clockwise on screen, the direction of German roundabout traffic.
        start = 80 + 120 * k
        path = _arc(0.0, 0.0, 0.55, start, start - 88, 16)
        _arrow(pen, path, 0.2, 0.48, 0.3, _WHITE)


class _Spec(NamedTuple):
    shape: str
    pictogram: Callable[[_Pen], None] | None = None
    mirrored: bool = False


_SIGNS: dict[int, _Spec] = {
    0: _Spec("prohibitory", _speed("20")),
    1: _Spec("prohibitory", _speed("30")),
    2: _Spec("prohibitory", _speed("50")),
    3: _Spec("prohibitory", _speed("60")),
    4: _Spec("prohibitory", _speed("70")),
    5: _Spec("prohibitory", _speed("80")),
    6: _Spec("end", _end_speed),
    7: _Spec("prohibitory", _speed("100")),
    8: _Spec("prohibitory", _speed("120")),
    9: _Spec("prohibitory", _no_passing),
    10: _Spec("prohibitory", _no_passing_trucks),
    11: _Spec("warning", _right_of_way),
    12: _Spec("priority"),
    13: _Spec("yield"),
    14: _Spec("octagon", lambda pen: pen.text("STOP", (-0.74, -0.28, 0.74, 0.28), _WHITE)),
    15: _Spec("prohibitory"),
    16: _Spec("prohibitory", _trucks_prohibited),
    17: _Spec("red_disc", _no_entry),
    18: _Spec("warning", _caution),
    19: _Spec("warning", _curve_left),
    20: _Spec("warning", _curve_left, mirrored=True),
    21: _Spec("warning", _double_curve),
    22: _Spec("warning", _bumpy_road),
    23: _Spec("warning", _slippery_road),
    24: _Spec("warning", _road_narrows_right),
    25: _Spec("warning", _road_work),
    26: _Spec("warning", _traffic_signals),
    27: _Spec("warning", _pedestrians),
    28: _Spec("warning", _children),
    29: _Spec("warning", _bicycle),
    30: _Spec("warning", _snowflake),
    31: _Spec("warning", _deer),
    32: _Spec("end", _end_all),
    33: _Spec("mandatory", _turn_right),
    34: _Spec("mandatory", _turn_right, mirrored=True),
    35: _Spec("mandatory", _ahead_only),
    36: _Spec("mandatory", _straight_or_right),
    37: _Spec("mandatory", _straight_or_right, mirrored=True),
    38: _Spec("mandatory", _keep_right),
    39: _Spec("mandatory", _keep_right, mirrored=True),
    40: _Spec("mandatory", _roundabout),
    41: _Spec("end", _end_no_passing),
    42: _Spec("end", _end_no_passing_trucks),
}


@functools.cache
def _template(class_id: int, res: int) -> Image.Image:
    """Clean sign filling a res x res square, drawn at 4x and box-filtered down for antialiasing.

    The result has premultiplied alpha ("RGBa") so that warping it needs no conversion and compositing
    is a single multiply-add.
    """
    spec = _SIGNS[class_id]
    big = res * _SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pictogram_pen = _SHAPES[spec.shape](_Pen(image, big / 2, (big / 2, big / 2)))
    if spec.pictogram is not None:
        spec.pictogram(pictogram_pen)
    if spec.mirrored:
        image = ImageOps.mirror(image)
    return image.reduce(_SUPERSAMPLE).convert("RGBa")


# --- Per-image randomisation. The sign is warped at twice the output size and box-filtered down;
# everything else happens at the output size on channel-first float32 arrays: numpy broadcasts a
# per-channel factor over (3, H, W) several times faster than over (H, W, 3), and blur and resampling
# become one small matrix product per axis. ---


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # Same distribution as rng.uniform(low, high), at a third of the call overhead for scalars.
    return low + (high - low) * rng.random()


class _Placement(NamedTuple):
    """Where the sign landed in the output image, in pixels."""

    cx: float
    cy: float
    extent: float


def _warped_sign(class_id: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, _Placement]:
    """The sign as premultiplied float32 RGBA of shape (4, size, size), and where it was placed.

    The warp is offset . rotation . scale . perspective, applied to template coordinates normalised to
    [-1, 1]; PIL wants its inverse, from output pixels back to template pixels. The cached template is
    first resized, with antialiasing, to the sign's size at twice the output resolution; the warp then
    samples it about 1:1 at that resolution, and a 2x2 box filter gives the output.
    """
    extent = min(max(rng.normal(0.8, 0.07), 0.6), 0.95) * size
    # Turning the sign away foreshortens one axis and shrinks its far side, as in a pinhole camera.
    yaw = _uniform(rng, -0.5, 0.5) if rng.random() < 0.7 else 0.0
    pitch = _uniform(rng, -0.3, 0.3) if rng.random() < 0.5 else 0.0
    angle = math.radians(min(max(rng.normal(0.0, 4.0), -12.0), 12.0))
    slack = (size - extent) / 2
    cx, cy = size / 2 + (rng.random(2) * 1.2 - 0.6) * slack
    sx = extent * math.cos(yaw) * rng.normal(1.0, 0.03)
    sy = extent * math.cos(pitch)
    c, s = math.cos(angle), math.sin(angle)
    side = max(_MIN_SIZE, round(2 * extent))
    # Each step inverted, in reverse order. Work pixels are twice the output pixels.
    ox, oy = 2 * cx, 2 * cy
    from_work = np.array(
        [
            [c / sx, s / sx, -(c * ox + s * oy) / sx],
            [-s / sy, c / sy, (s * ox - c * oy) / sy],
            [0.0, 0.0, 1.0],
        ]
    )
    flatten = np.array(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.15 * math.sin(yaw), -0.15 * math.sin(pitch), 1.0]]
    )
    to_template = np.array([[side / 2, 0.0, side / 2], [0.0, side / 2, side / 2], [0.0, 0.0, 1.0]])
    inverse = to_template @ flatten @ from_work
    coeffs = tuple((inverse.ravel() / inverse[2, 2])[:8])
    template = _resized_template(class_id, 2 * size, side)
    warped = template.transform((2 * size, 2 * size), Image.PERSPECTIVE, coeffs, Image.NEAREST).reduce(2)
    rgba = np.asarray(warped).transpose(2, 0, 1).astype(np.float32, order="C")
    return rgba * np.float32(1 / 255), _Placement(float(cx), float(cy), extent)


@functools.lru_cache(maxsize=4096)
def _resized_template(class_id: int, res: int, side: int) -> Image.Image:
    # Sign sizes are whole pixels, so a few dozen sizes per class cover every image.
    return _template(class_id, res).resize((side, side), Image.BILINEAR)


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre row and column coordinates in [-0.5, 0.5], shaped (1, size, 1) and (1, 1, size)."""
    ramp = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)
    return ramp[None, :, None], ramp[None, None, :]


def _gaussian_matrix(n_out: int, n_in: int, sigma: float) -> np.ndarray:
    """Row-stochastic (n_out, n_in) matrix: each output sample a Gaussian-weighted mean of the inputs.

    Positions are pixel centres on the same [0, 1] span, so it both resamples and blurs; `sigma` is in
    units of the larger of the two pixel pitches.
    """
    out_pos = (np.arange(n_out) + 0.5) / n_out
    in_pos = (np.arange(n_in) + 0.5) / n_in
    scale = sigma / min(n_out, n_in)
    weights = np.exp(-0.5 * ((out_pos[:, None] - in_pos[None, :]) / scale) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _noise_upsampler(cells: int, size: int) -> np.ndarray:
    """Interpolation matrix for value noise, with rows scaled so the result has unit variance."""
    m = _gaussian_matrix(size, cells, 0.7)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-variance value noise of shape (1, size, size) with about `cells` blobs per side."""
    m = _noise_upsampler(cells, size)
    return (m @ rng.standard_normal((cells, cells), dtype=np.float32) @ m.T)[None]


def _color(lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A range of RGB colours, stored as (low, span) broadcastable over (3, H, W)."""
    low = np.array(lo, dtype=np.float32)[:, None, None]
    return low, np.array(hi, dtype=np.float32)[:, None, None] - low


def _random_color(rng: np.random.Generator, color_range: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    low, span = color_range
    return low + span * rng.random((3, 1, 1), dtype=np.float32)


_SKY = _color((0.35, 0.45, 0.55), (0.75, 0.85, 1.0))
_BRIGHT_SKY = _color((0.45, 0.55, 0.65), (0.85, 0.9, 1.0))
_LEAVES = _color((0.08, 0.12, 0.03), (0.4, 0.45, 0.25))
_LEAF_GAPS = _color((0.6, 0.65, 0.7), (0.95, 0.95, 1.0))
_FACADE = _color((0.3, 0.28, 0.25), (0.85, 0.8, 0.75))
_WINDOWS = _color((0.05, 0.05, 0.08), (0.45, 0.5, 0.55))
_SHADE = _color((0.02, 0.02, 0.03), (0.18, 0.18, 0.2))
_ANY = _color((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
_METAL = _color((0.35, 0.35, 0.35), (0.75, 0.75, 0.75))
_GLARE = _color((0.6, 0.6, 0.6), (1.0, 1.0, 1.0))
# Cumulative probabilities of the background kinds: sky, foliage, building, shade, gradient.
_BACKGROUND_CDF = np.cumsum([0.2, 0.3, 0.2, 0.2, 0.1])


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 (3, size, size) scene in [0, 1]; sky above foliage, buildings or dark surroundings."""
    rows, cols = _grid(size)
    kind = int(np.searchsorted(_BACKGROUND_CDF, rng.random() * _BACKGROUND_CDF[-1]))
    if kind == 0:  # sky: blue or overcast grey, brighter towards the horizon
        scene = (
            _random_color(rng, _SKY) + _uniform(rng, 0.0, 0.2) * rows + _smooth_noise(rng, size, 4) * 0.025
        )
    elif kind == 1:  # foliage: green/brown with leafy mid-frequency texture and bright gaps
        leaves = _smooth_noise(rng, size, int(rng.integers(6, 16)))
        scene = _random_color(rng, _LEAVES) * (1 + 0.3 * leaves) + _smooth_noise(rng, size, 5) * 0.045
        # Sky seen through the leaves, with soft edges.
        holes = _smooth_noise(rng, size, int(rng.integers(8, 20)))
        gaps = np.clip((holes - _uniform(rng, 0.85, 1.6)) * 3, 0, 1)
        scene = scene + (_random_color(rng, _LEAF_GAPS) - scene) * gaps
    elif kind == 2:  # building facade with a grid of windows
        scene = _random_color(rng, _FACADE) + _smooth_noise(rng, size, 6) * 0.03
        period = _uniform(rng, 0.25, 0.7)
        phase = rng.uniform(0, period, size=2)
        win_rows = ((rows[0] + phase[0]) % period) < period * _uniform(rng, 0.35, 0.65)
        win_cols = ((cols[0] + phase[1]) % period) < period * _uniform(rng, 0.35, 0.65)
        scene[:, win_rows & win_cols] = _random_color(rng, _WINDOWS)[:, :, 0]
    elif kind == 3:  # dusk, tunnels, shade: mostly dark
        scene = _random_color(rng, _SHADE) * (1 + 0.3 * _smooth_noise(rng, size, 6))
    else:  # anything else: a muted two-colour gradient
        muted = _color_matrix(0.6, np.ones(3))
        a, b = (_apply_color(muted, _random_color(rng, _ANY)) for _ in range(2))
        theta = _uniform(rng, 0, 2 * math.pi)
        scene = a + (b - a) * ((math.cos(theta) * cols + math.sin(theta) * rows) / 1.42 + 0.5)
    full = np.empty((3, size, size), dtype=np.float32)
    full[...] = scene
    scene = full
    if kind != 0 and rng.random() < 0.35:
        scene[:, : int(rng.integers(0, size // 2))] = _random_color(rng, _BRIGHT_SKY)
    return scene


@functools.lru_cache(maxsize=64)
def _post_shading(width: int) -> np.ndarray:
    # A round post lit from the left darkens towards its right edge.
    return np.linspace(1.0, 0.55, width, dtype=np.float32)[None, None, :]


def _add_clutter(rng: np.random.Generator, scene: np.ndarray, placement: _Placement) -> None:
    """A post under the sign and sometimes a neighbouring sign or plate cut off by the image border."""
    size = scene.shape[1]
    cx, cy, extent = placement
    if rng.random() < 0.6:
        half = extent * _uniform(rng, 0.03, 0.06)
        x0 = min(max(0, round(cx - half)), size - 1)
        x1 = min(size, max(round(cx + half), x0 + 1))
        shade = _post_shading(x1 - x0)
        scene[:, round(cy) :, x0:x1] = _random_color(rng, _METAL) * shade
    if rng.random() < 0.25:
        rows, cols = _grid(size)
        rows, cols = rows[0], cols[0]
        # Neighbouring signs on the same post sit directly above or below, mostly below.
        ny = (cy + extent * _uniform(rng, 0.9, 1.1) * (1 if rng.random() < 0.6 else -1)) / size - 0.5
        nx = (cx + rng.normal(0, 0.05) * extent) / size - 0.5
        r = extent / size / 2
        if rng.random() < 0.5:  # white supplementary plate with a black edge
            dx, dy = np.abs(cols - nx), np.abs(rows - ny)
            scene[:, (dx < r * 0.95) & (dy < r * 0.5)] = 0.15
            scene[:, (dx < r * 0.9) & (dy < r * 0.45)] = 0.9
        else:  # another red-ringed or blue round sign
            dist = np.hypot(cols - nx, rows - ny)
            red = rng.random() < 0.6
            scene[:, dist < r] = np.array(_RED if red else _BLUE, dtype=np.float32)[:, None] / 255
            if red:
                scene[:, dist < r * 0.78] = 0.9


_IDENTITY = np.eye(3, dtype=np.float32)
# Every row is the Rec. 601 luma weights: multiplying by it replaces each channel with the luminance.
_TO_LUMA = np.tile(np.array([0.299, 0.587, 0.114], dtype=np.float32), (3, 1))


def _color_matrix(fade: float, gains: np.ndarray) -> np.ndarray:
    """3x3 matrix that scales the channels by `gains`, then blends towards luminance by `fade`.

    Fading models sun-bleached or dirty paint and hazy air; as a matrix it costs one small product.
    """
    return (_IDENTITY * np.float32(1 - fade) + _TO_LUMA * np.float32(fade)) * gains.astype(np.float32)


def _apply_color(matrix: np.ndarray, img: np.ndarray) -> np.ndarray:
    return (matrix @ img.reshape(3, -1)).reshape(img.shape)


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Haze, exposure, colour cast, uneven light and desaturation on a (3, H, W) image in [0, 1]."""
    if rng.random() < 0.2:
        # Veiling glare lifts the blacks before exposure, so a hazy frame can still be dark or bright.
        haze = _uniform(rng, 0.15, 0.5)
        img = img * np.float32(1 - haze) + haze * _random_color(rng, _GLARE)
    # GTSRB is dominated by underexposed frames, with a tail of overexposed ones.
    gain = min(max(math.exp(rng.normal(-0.55, 0.6)), 0.12), 2.2)
    cast = gain * (1 + 0.07 * rng.standard_normal(3))
    rows, cols = _grid(img.shape[1])
    theta = _uniform(rng, 0, 2 * math.pi)
    light = 1.0 + _uniform(rng, 0.0, 0.5) * (math.cos(theta) * cols + math.sin(theta) * rows)
    img = np.clip(_apply_color(_color_matrix(_uniform(rng, 0.0, 0.5), cast), img) * light, 0.0, 1.0)
    # Even the worst GTSRB frames keep some contrast; stretch ones that the random draws flattened.
    floor = _uniform(rng, 0.045, 0.08)
    flat = img.ravel()
    mean = float(flat.mean())
    std = math.sqrt(max(float(flat.dot(flat)) / flat.size - mean * mean, 0.0))
    if std < floor:
        img = (img - mean) * np.float32(floor / max(std, 1e-4)) + mean
    return img


def _optics(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Defocus, motion blur along an image axis, or low source resolution, as one matrix per axis.

    At most one of them per image: stacked, they smear a 32 x 32 sign beyond recognition.
    """
    size = img.shape[1]
    # Blur widths in pixels of a 32 x 32 image, scaled to the output size below.
    sigma_y = sigma_x = 0.0
    low = size
    kind = rng.random()
    if kind < 0.3:
        sigma_y = sigma_x = _uniform(rng, 0.2, 0.75)
    elif kind < 0.4:
        # A moving camera smears mostly along one axis.
        sigma_y, sigma_x = _uniform(rng, 0.0, 0.3), _uniform(rng, 0.6, 1.2)
        if rng.random() < 0.3:
            sigma_y, sigma_x = sigma_x, sigma_y
    elif kind < 0.6:
        # Many GTSRB crops were upscaled from tiny detections; emulate the lost detail.
        low = int(rng.integers(max(_MIN_SIZE // 2, size // 2), size))
    else:
        return img
    # Quantised blur widths let the per-axis matrices be cached; 0.05 px steps are invisible.
    rows = _optics_matrix(size, low, round(sigma_y * size / 32 * 20))
    cols = _optics_matrix(size, low, round(sigma_x * size / 32 * 20))
    return rows @ img @ cols.T


@functools.lru_cache(maxsize=2048)
def _optics_matrix(size: int, low: int, sigma_twentieths: int) -> np.ndarray:
    sigma = sigma_twentieths / 20
    m = _gaussian_matrix(size, size, sigma) if sigma > 0.05 else np.eye(size, dtype=np.float32)
    if low < size:
        # Downsampling to `low` pixels and back blurs by about one low-resolution pixel.
        m = _gaussian_matrix(size, low, 0.45) @ _gaussian_matrix(low, size, 0.45) @ m
    return m


@functools.lru_cache(maxsize=8)
def _noise_table(size: int) -> np.ndarray:
    """Fixed Gaussian noise, cropped at random offsets per image; cheaper than fresh draws."""
    return np.random.default_rng(0).standard_normal((4, 3 * size, 3 * size), dtype=np.float32)


def _sensor_noise(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Mostly luminance noise, with a weaker independent component per channel (values in 0..1)."""
    sigma = 0.024 * rng.random() ** 2
    if sigma < 0.002:
        return img
    size = img.shape[1]
    y, x = rng.integers(0, 2 * size, size=2)
    z = _noise_table(size)[:, y : y + size, x : x + size]
    return img + z[:1] * np.float32(sigma) + z[1:] * np.float32(sigma / 3)


_LEVELS = np.linspace(0.0, 1.0, 256, dtype=np.float32)


def _to_pixels(img: np.ndarray, gamma: float) -> np.ndarray:
    """(3, H, W) float image in [0, 1] to (H, W, 3) uint8, applying the camera's gamma by lookup table."""
    pixels = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return (_LEVELS**gamma * 255 + 0.5).astype(np.uint8)[pixels]


def _check_size(size: int) -> None:
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE}, got {size}")


def render_sign(class_id: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One RGB image (size x size) of a sign of class `class_id`, randomly varied using `rng`.

    The sign covers roughly 60-95% of the image width (about 80% on average, as in GTSRB crops).
    """
    return Image.fromarray(_render(class_id, rng, size), "RGB")


def _render(class_id: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """render_sign as a (size, size, 3) uint8 array, which is what generate_signs needs."""
    if not 0 <= class_id < _NUM_CLASSES:
        raise ValueError(f"class_id must be in 0..{_NUM_CLASSES - 1}, got {class_id}")
    _check_size(size)
    sign, placement = _warped_sign(class_id, rng, size)
    alpha = sign[3:]
    # Paint fades and tints; retroreflective paint usually looks brighter than its surroundings.
    tint = _uniform(rng, 0.85, 1.4) * (1 + 0.05 * rng.standard_normal(3))
    sign_rgb = _apply_color(_color_matrix(_uniform(rng, 0.0, 0.5), tint), sign[:3])

    scene = _background(rng, size) * np.float32(_uniform(rng, 0.3, 0.9))
    _add_clutter(rng, scene, placement)
    img = _photometric(rng, sign_rgb + scene * (1 - alpha))
    pixels = _to_pixels(_sensor_noise(rng, _optics(rng, img)), _uniform(rng, 0.75, 1.35))
    if rng.random() < 0.2:
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=int(rng.integers(30, 85)))
        pixels = np.asarray(Image.open(buffer).convert("RGB"))
    return pixels


def generate_signs(
    num_per_class: int, seed: int = 0, size: int = 32, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Render a class-balanced synthetic GTSRB-style dataset.

    Returns (images uint8 array of shape (43 * num_per_class, size, size, 3), labels int64 array of
    shape (N,)). Classes are interleaved: image i shows class i % 43, so each consecutive block of 43
    images holds one sign of every class. Image i is
    `render_sign(i % 43, numpy.random.default_rng([seed, i]), size)` and depends on nothing else: the
    output is byte-identical across calls and processes, and a smaller `num_per_class` gives a prefix
    of a larger one. `seed` must be non-negative.
    """
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be at least 1, got {num_per_class}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    _check_size(size)
    total = _NUM_CLASSES * num_per_class
    labels = np.tile(np.arange(_NUM_CLASSES, dtype=np.int64), num_per_class)
    images = np.empty((total, size, size, 3), dtype=np.uint8)
    for i in tqdm(range(total), desc="Rendering synthetic signs", unit="img", disable=not progress):
        images[i] = _render(int(labels[i]), np.random.default_rng([seed, i]), size)
    logger.debug("Rendered %d synthetic signs at %dx%d (seed %d)", total, size, size, seed)
    return images, labels
