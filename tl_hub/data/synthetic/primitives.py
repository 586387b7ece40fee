"""Drawing primitives for the sign templates: the palette, a pen in a sign-local frame, DIN 1451 digits,
geometry helpers (arcs, Bezier curves, polygons, arrows) and the sign bodies (discs, triangles, diamond,
octagon)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
Point = tuple[float, float]

WHITE: Color = (245, 245, 240)
BLACK: Color = (22, 22, 24)
RED: Color = (200, 28, 38)
BLUE: Color = (22, 78, 170)
YELLOW: Color = (245, 182, 24)
GREY: Color = (112, 112, 112)
DARK_GREY: Color = (70, 70, 70)
SIGNAL_RED: Color = (210, 30, 30)
SIGNAL_YELLOW: Color = (240, 190, 20)
SIGNAL_GREEN: Color = (20, 160, 80)


class Pen:
    """Draws in a local frame where (-1, -1)..(1, 1) is a square region of the template image."""

    def __init__(self, image: Image.Image, scale: float, origin: Point) -> None:
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.scale = scale
        self.origin = origin

    def sub(self, cx: float, cy: float, r: float) -> Pen:
        ox, oy = self.pt(cx, cy)
        return Pen(self.image, self.scale * r, (ox, oy))

    def pt(self, x: float, y: float) -> Point:
        return (self.origin[0] + x * self.scale, self.origin[1] + y * self.scale)

    def poly(self, points: Sequence[Point], fill: Color) -> None:
        self.draw.polygon([self.pt(x, y) for x, y in points], fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: Color) -> None:
        (ax, ay), (bx, by) = self.pt(x - rx, y - ry), self.pt(x + rx, y + ry)
        self.draw.ellipse((ax, ay, bx, by), fill=fill)

    def disc(self, x: float, y: float, r: float, fill: Color) -> None:
        self.ellipse(x, y, r, r, fill)

    def line(self, points: Sequence[Point], width: float, fill: Color, round_caps: bool = True) -> None:
        pixels = [self.pt(x, y) for x, y in points]
        self.draw.line(pixels, fill=fill, width=max(1, round(width * self.scale)), joint="curve")
        if round_caps:
            for x, y in (points[0], points[-1]):
                self.disc(x, y, width / 2, fill)

    def ring(self, x: float, y: float, r: float, width: float, fill: Color) -> None:
        (ax, ay), (bx, by) = self.pt(x - r, y - r), self.pt(x + r, y + r)
        self.draw.ellipse((ax, ay, bx, by), outline=fill, width=max(1, round(width * self.scale)))

    def text(self, text: str, box: tuple[float, float, float, float], fill: Color) -> None:
        """Bold text stretched to fill `box` (the STOP sign's lettering; numbers are `number`)."""
        mask = _text_mask(text)
        (ax, ay), (bx, by) = self.pt(box[0], box[1]), self.pt(box[2], box[3])
        w, h = round(bx - ax), round(by - ay)
        mask = mask.resize((w, h), Image.LANCZOS)
        self.image.paste(Image.new("RGBA", (w, h), (*fill, 255)), (round(ax), round(ay)), mask)

    def number(
        self, digits: str, cx: float, cy: float, height: float, fill: Color, stroke: float | None = None
    ) -> None:
        """`digits` centred on (cx, cy), `height` tall, as the uniform strokes of DIN 1451 sign digits,
        `stroke` times the height wide (default DIGIT_STROKE)."""
        stroke = DIGIT_STROKE if stroke is None else stroke
        widths = [_DIGIT_WIDTH[d] for d in digits]
        x = cx - (sum(widths) + _DIGIT_GAP * (len(digits) - 1)) * height / 2
        for d, w in zip(digits, widths, strict=True):
            glyph = self.sub(x + w * height / 2, cy, height / 2)
            for line in _DIGIT_STROKES[d]:
                # Glyph coordinates: x from 0 (left) to the digit's width, y from 0 (top) to 1 (bottom).
                glyph.line([(2 * gx - w, 2 * gy - 1) for gx, gy in line], 2 * stroke, fill)
            x += (w + _DIGIT_GAP) * height


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


def arc(cx: float, cy: float, r: float, deg0: float, deg1: float, n: int = 24) -> list[Point]:
    """Points on a circle; angles in degrees with y pointing down, so increasing angle turns clockwise."""
    angles = np.radians(np.linspace(deg0, deg1, n))
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def bezier(p0: Point, p1: Point, p2: Point, p3: Point, n: int = 20) -> list[Point]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return [(float(x), float(y)) for x, y in pts]


# DIN 1451 digits as stroke centre lines, in glyph units: the digit is 1 tall, _DIGIT_WIDTH wide, drawn with
# a uniform stroke DIGIT_STROKE wide. Road-sign digits are narrow (width about 0.55 of the height) with
# open counters; a bold font stretched into the same box closes them, and a 6 reads as an 8.
DIGIT_STROKE = 0.13
_DIGIT_GAP = 0.1
_HALF = DIGIT_STROKE / 2
_DIGIT_WIDTH = {"0": 0.56, "1": 0.4, "2": 0.56, "3": 0.56, "5": 0.56, "6": 0.56, "7": 0.54, "8": 0.56}
_BOWL = (0.56 - 2 * _HALF) / 2  # radius of the round parts of a full-width digit
_DIGIT_STROKES: dict[str, list[list[Point]]] = {
    "0": [
        [
            *arc(0.28, _HALF + _BOWL, _BOWL, 180, 360, 16),
            *arc(0.28, 1 - _HALF - _BOWL, _BOWL, 0, 180, 16),
            (_HALF, _HALF + _BOWL),
        ]
    ],
    "1": [[(0.12, 0.3), (0.3, _HALF), (0.3, 1 - _HALF)]],
    "2": [
        [*arc(0.28, _HALF + _BOWL, _BOWL, 195, 385, 16), (_HALF + 0.01, 1 - _HALF), (0.56 - _HALF, 1 - _HALF)]
    ],
    # German signs' 3 has a round top, a smaller bowl over the lower one (GTSRB's 30 km/h signs); a flat top
    # and diagonal taught models that a round-topped digit is a 2.
    "3": [[*arc(0.28, 0.255, 0.19, 200, 445, 16), *arc(0.27, 0.7, 0.235, 265, 500, 18)]],
    "5": [[(0.48, _HALF), (0.11, _HALF), (0.08, 0.47), *arc(0.28, 0.7, 0.235, 240, 495, 18)]],
    "6": [
        [*arc(0.28, 1 - _HALF - _BOWL, _BOWL, 0, 360, 20)],
        [(_HALF, 1 - _HALF - _BOWL), (_HALF, 0.34), *arc(0.32, 0.34, 0.32 - _HALF, 180, 290, 10)],
    ],
    "7": [[(_HALF, _HALF), (0.54 - _HALF, _HALF), (0.18, 1 - _HALF)]],
    "8": [[*arc(0.28, 0.255, 0.19, 0, 360, 18)], [*arc(0.28, 0.72, 0.215, 0, 360, 20)]],
}


def _regular(n: int, r: float, deg0: float, cx: float = 0.0, cy: float = 0.0) -> list[Point]:
    """Vertices of a regular n-gon with circumradius r, the first at angle deg0."""
    angles = np.radians(deg0 + 360.0 * np.arange(n) / n)
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def rotated_ellipse(cx: float, cy: float, rx: float, ry: float, deg: float, n: int = 28) -> list[Point]:
    a = math.radians(deg)
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return [
        (cx + xi * math.cos(a) - yi * math.sin(a), cy + xi * math.sin(a) + yi * math.cos(a))
        for xi, yi in zip(x, y, strict=True)
    ]


def arrow(pen: Pen, path: Sequence[Point], width: float, head_w: float, head_l: float, fill: Color) -> None:
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


def _shape_prohibitory(pen: Pen) -> Pen:
    pen.disc(0, 0, 1.0, WHITE)
    pen.disc(0, 0, 0.96, RED)
    pen.disc(0, 0, 0.75, WHITE)
    return pen.sub(0, 0, 0.75)


def _shape_red_disc(pen: Pen) -> Pen:
    pen.disc(0, 0, 1.0, WHITE)
    pen.disc(0, 0, 0.96, RED)
    return pen.sub(0, 0, 0.96)


def _shape_end(pen: Pen) -> Pen:
    pen.disc(0, 0, 1.0, DARK_GREY)
    pen.disc(0, 0, 0.955, WHITE)
    return pen.sub(0, 0, 0.955)


def _shape_mandatory(pen: Pen) -> Pen:
    pen.disc(0, 0, 1.0, WHITE)
    pen.disc(0, 0, 0.96, BLUE)
    return pen.sub(0, 0, 0.96)


def _rounded_regular(
    pen: Pen, n: int, inradius: float, deg0: float, cy: float, corner: float, fill: Color
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


def _shape_warning(pen: Pen) -> Pen:
    _rounded_regular(pen, 3, _TRI_IN, -90, _TRI_CY, 0.12, WHITE)
    _rounded_regular(pen, 3, _TRI_IN - 0.035, -90, _TRI_CY, 0.1, RED)
    _rounded_regular(pen, 3, _TRI_IN - 0.195, -90, _TRI_CY, 0.04, WHITE)
    return pen.sub(0, _TRI_CY + 0.01, 0.48)


def _shape_yield(pen: Pen) -> Pen:
    _rounded_regular(pen, 3, _TRI_IN, 90, -_TRI_CY, 0.12, WHITE)
    _rounded_regular(pen, 3, _TRI_IN - 0.035, 90, -_TRI_CY, 0.1, RED)
    _rounded_regular(pen, 3, _TRI_IN - 0.235, 90, -_TRI_CY, 0.04, WHITE)
    return pen


def _shape_priority(pen: Pen) -> Pen:
    diamond = [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)]
    pen.poly(diamond, DARK_GREY)
    pen.poly([(x * 0.95, y * 0.95) for x, y in diamond], WHITE)
    pen.poly([(x * 0.64, y * 0.64) for x, y in diamond], YELLOW)
    return pen


def _shape_octagon(pen: Pen) -> Pen:
    # Circumradius chosen so the flat edges of the octagon touch the template border.
    r = 1 / math.cos(math.pi / 8)
    pen.poly(_regular(8, r, 22.5), WHITE)
    pen.poly(_regular(8, r * 0.95, 22.5), RED)
    inner_edge = _regular(8, r * 0.87, 22.5)
    pen.line([*inner_edge, inner_edge[0]], 0.035, WHITE, round_caps=False)
    return pen


SHAPES: dict[str, Callable[[Pen], Pen]] = {
    "prohibitory": _shape_prohibitory,
    "red_disc": _shape_red_disc,
    "end": _shape_end,
    "mandatory": _shape_mandatory,
    "warning": _shape_warning,
    "yield": _shape_yield,
    "priority": _shape_priority,
    "octagon": _shape_octagon,
}
