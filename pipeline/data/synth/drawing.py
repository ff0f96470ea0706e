"""Drawing: the objects of each class, the textured background, and each frame with its mask.

Every object is drawn in its own unit square ([-0.5, 0.5]^2, y down) onto the frame and, with the
same geometry, onto the class-index mask, so the mask marks exactly the drawn object parts; props
and effects (a branch, headlight beams, motion marks) are drawn on the frame only. `PAINTERS`
maps each class name to its drawing function. Runs in the rendering worker processes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data.synth.classes import BACKGROUNDS, CLASS_NAMES, RGB
from pipeline.data.synth.plans import _Plan

BLACK: RGB = (20, 20, 20)
WHITE: RGB = (245, 245, 240)
DARK_RED: RGB = (120, 20, 30)
PINK: RGB = (240, 120, 140)
SKIN: RGB = (250, 215, 185)
WOOD: RGB = (110, 70, 35)
ORANGE: RGB = (245, 150, 30)
YELLOW: RGB = (255, 235, 90)
GLASS: RGB = (170, 210, 235)


# ---------------------------------------------------------------------------------------------
# Objects.


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


class _Painter:
    """Draws one object's parts on the frame and its mask; `part=False` marks props and effects
    (a branch, headlight beams, motion marks) that are drawn but are not the object."""

    def __init__(self, frame: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw, mask_value: int,
                 centre: np.ndarray, scale: float, angle: float, flip: bool):
        self.frame, self.mask, self.mask_value = frame, mask, mask_value
        self.centre, self.scale, self.flip = centre, scale, flip
        self.rotate(angle, (0.0, 0.0))

    def rotate(self, degrees: float, pivot: tuple[float, float]) -> None:
        a = np.deg2rad(degrees)
        self.rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.pivot = np.asarray(pivot, dtype=float)

    def _map(self, pts) -> list[tuple[float, float]]:
        p = np.asarray(pts, dtype=float).reshape(-1, 2)
        p = (p - self.pivot) @ self.rot.T + self.pivot
        if self.flip:
            p[:, 0] = -p[:, 0]
        return [tuple(q) for q in (p * self.scale + self.centre).tolist()]

    def polygon(self, pts, fill: RGB, outline: RGB | None = None, part: bool = True) -> None:
        xy = self._map(pts)
        self.frame.polygon(xy, fill=fill, outline=outline)
        if part:
            self.mask.polygon(xy, fill=self.mask_value, outline=self.mask_value)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: RGB, outline: RGB | None = None,
                part: bool = True) -> None:
        a = np.linspace(0, 2 * np.pi, 28, endpoint=False)  # polygons so rotation and flips apply
        self.polygon(np.stack([x + rx * np.cos(a), y + ry * np.sin(a)], 1), fill, outline, part)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, outline: RGB | None = None,
             part: bool = True) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill, outline, part)

    def line(self, pts, fill: RGB, width: float, part: bool = True) -> None:
        xy = self._map(pts)
        w = max(1, round(width * self.scale))
        self.frame.line(xy, fill=fill, width=w, joint="curve")
        if part:
            self.mask.line(xy, fill=self.mask_value, width=w)


def _draw_dog(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.65)
    p.line([(-0.33, 0.05), (-0.47, -0.18)], dark, 0.06)  # tail
    for x in (-0.27, -0.14, 0.08, 0.2):
        p.rect(x - 0.035, 0.18, x + 0.035, 0.45, dark)  # legs
    p.ellipse(-0.05, 0.1, 0.32, 0.17, c)  # body
    p.ellipse(-0.15, 0.06, 0.08, 0.05, dark)  # spots
    p.ellipse(0.06, 0.15, 0.06, 0.04, dark)
    p.ellipse(0.28, -0.15, 0.16, 0.14, c)  # head
    p.ellipse(0.42, -0.08, 0.09, 0.065, _shade(c, 0.9))  # snout
    p.ellipse(0.5, -0.1, 0.03, 0.025, BLACK)  # nose
    p.ellipse(0.3, -0.2, 0.025, 0.025, BLACK)  # eye
    p.ellipse(0.2, -0.2, 0.06, 0.12, dark)  # ear
    if shown:
        p.polygon([(0.34, -0.04), (0.54, -0.02), (0.44, 0.12)], DARK_RED)  # open mouth
        p.ellipse(0.44, 0.06, 0.04, 0.03, PINK)  # tongue
    else:
        p.line([(0.36, -0.03), (0.5, -0.03)], BLACK, 0.015)


def _draw_cat(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.6)
    p.line([(0.18, 0.38), (0.38, 0.32), (0.42, 0.08)], c, 0.06)  # tail
    p.ellipse(0, 0.18, 0.24, 0.27, c)  # body
    for y in (0.05, 0.17, 0.29):  # stripes
        p.line([(-0.21, y), (-0.08, y + 0.03)], dark, 0.035)
        p.line([(0.21, y), (0.08, y + 0.03)], dark, 0.035)
    for s in (-1, 1):
        p.polygon([(0.17 * s, -0.26), (0.14 * s, -0.46), (0.03 * s, -0.33)], c)  # ears
    p.ellipse(0, -0.2, 0.18, 0.15, c)  # head
    for s in (-1, 1):
        p.ellipse(0.07 * s, -0.24, 0.035, 0.03, (90, 190, 80))  # eyes
        p.line([(0.06 * s, -0.13), (0.27 * s, -0.17)], BLACK, 0.01)  # whiskers
        p.line([(0.06 * s, -0.11), (0.27 * s, -0.07)], BLACK, 0.01)
    if shown:
        p.ellipse(0, -0.1, 0.06, 0.055, DARK_RED)  # open mouth
    else:
        p.line([(-0.04, -0.1), (0, -0.08), (0.04, -0.1)], BLACK, 0.015)


def _draw_bird(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.6)
    p.line([(-0.5, 0.32), (0.5, 0.26)], WOOD, 0.06, part=False)  # the branch it perches on
    p.line([(-0.04, 0.17), (-0.06, 0.3)], ORANGE, 0.025)  # legs
    p.line([(0.06, 0.17), (0.05, 0.29)], ORANGE, 0.025)
    p.polygon([(-0.2, 0.02), (-0.48, -0.08), (-0.45, 0.14)], dark)  # tail
    p.ellipse(0, 0.05, 0.25, 0.16, c)  # body
    p.ellipse(-0.04, 0.03, 0.15, 0.08, dark)  # wing
    p.line([(-0.15, 0.02), (0.06, 0.04)], _shade(c, 0.4), 0.015)  # feathers
    p.line([(-0.13, 0.07), (0.05, 0.08)], _shade(c, 0.4), 0.015)
    p.ellipse(0.22, -0.12, 0.12, 0.11, c)  # head
    p.ellipse(0.26, -0.15, 0.025, 0.025, BLACK)  # eye
    if shown:  # beak open
        p.polygon([(0.31, -0.15), (0.49, -0.23), (0.33, -0.11)], ORANGE)
        p.polygon([(0.32, -0.1), (0.48, -0.02), (0.31, -0.07)], ORANGE)
    else:
        p.polygon([(0.32, -0.15), (0.48, -0.11), (0.32, -0.07)], ORANGE)


def _draw_baby(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    for s in (-1, 1):
        p.ellipse(0.25 * s, 0.15, 0.08, 0.13, SKIN)  # arms
    p.ellipse(0, 0.22, 0.24, 0.24, c)  # clothes
    for y in (0.12, 0.22, 0.32):
        p.ellipse(0, y, 0.02, 0.02, WHITE)  # buttons
    p.ellipse(0, -0.18, 0.2, 0.2, SKIN)  # head
    p.ellipse(0, -0.35, 0.12, 0.05, (110, 70, 40))  # hair
    if shown:  # crying: squeezed eyes, open mouth, tears
        for s in (-1, 1):
            p.line([(0.11 * s, -0.23), (0.05 * s, -0.2)], BLACK, 0.02)
            p.ellipse(0.13 * s, -0.12, 0.025, 0.045, (90, 160, 240))
        p.ellipse(0, -0.08, 0.08, 0.065, DARK_RED)
    else:
        for s in (-1, 1):
            p.ellipse(0.08 * s, -0.21, 0.025, 0.025, BLACK)
        p.line([(-0.05, -0.1), (0, -0.08), (0.05, -0.1)], BLACK, 0.015)


def _draw_guitar(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    rim = _shade(c, 0.5)
    p.rect(-0.035, -0.47, 0.035, -0.05, WOOD)  # neck
    p.rect(-0.055, -0.5, 0.055, -0.42, _shade(WOOD, 0.6))  # head
    p.ellipse(0, 0.22, 0.22, 0.2, c, outline=rim)  # lower bout
    p.ellipse(0, -0.01, 0.17, 0.15, c, outline=rim)  # upper bout
    p.ellipse(0, 0.07, 0.06, 0.06, BLACK)  # sound hole
    p.rect(-0.08, 0.27, 0.08, 0.3, _shade(WOOD, 0.6))  # bridge
    for i, x in enumerate((-0.024, -0.008, 0.008, 0.024)):
        if shown:  # strummed: strings shake
            ys = np.linspace(-0.45, 0.28, 9)
            xs = x + 0.03 * (-1.0) ** (np.arange(9) + i + frame)
            p.line(np.stack([xs, ys], 1), (255, 250, 220), 0.015)
        else:
            p.line([(x, -0.45), (x, 0.28)], (200, 200, 200), 0.01)
    if shown:
        for y in (-0.02, 0.08, 0.18):
            p.line([(0.25, y), (0.36, y - 0.04)], YELLOW, 0.025, part=False)  # motion marks


def _draw_piano(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    edge = _shade(c, 0.5) if sum(c) > 300 else (90, 90, 90)
    p.rect(-0.44, 0.3, -0.38, 0.48, c, outline=edge)  # legs
    p.rect(0.38, 0.3, 0.44, 0.48, c, outline=edge)
    p.rect(-0.48, -0.36, 0.48, 0.3, c, outline=edge)  # case
    p.rect(-0.44, -0.3, 0.44, -0.1, _shade(c, 0.8) if sum(c) > 300 else (60, 60, 65))  # front panel
    p.rect(-0.45, 0.0, 0.45, 0.16, WHITE)  # keyboard
    pressed = {(3 * frame + 4 * j) % 10 for j in range(3)} if shown else set()
    for k in range(10):
        x0 = -0.45 + 0.09 * k
        if k in pressed:
            p.rect(x0, 0.0, x0 + 0.09, 0.16, (110, 165, 235))
        p.line([(x0, 0.0), (x0, 0.16)], (60, 60, 60), 0.008)
    for k in (1, 2, 4, 5, 6, 8, 9):
        x = -0.45 + 0.09 * k
        p.rect(x - 0.022, 0.0, x + 0.022, 0.09, BLACK)  # black keys
    if shown:
        for j, x in enumerate((-0.3, 0.0, 0.28)):  # notes rising from the piano
            y = -0.45 - 0.05 * ((frame + j) % 2)
            p.ellipse(x, y, 0.04, 0.03, BLACK, part=False)
            p.line([(x + 0.035, y), (x + 0.035, y - 0.14)], BLACK, 0.02, part=False)


def _draw_violin(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    rim = _shade(c, 0.5)
    p.ellipse(0, 0.2, 0.2, 0.17, c, outline=rim)  # lower bout
    p.ellipse(0, -0.08, 0.17, 0.14, c, outline=rim)  # upper bout
    p.rect(-0.11, 0.0, 0.11, 0.12, c)  # waist
    for s in (-1, 1):
        p.line([(0.07 * s, 0.04), (0.06 * s, 0.17)], BLACK, 0.015)  # f-holes
    p.rect(-0.025, -0.45, 0.025, 0.17, BLACK)  # fingerboard
    p.ellipse(0, -0.47, 0.04, 0.035, _shade(c, 0.6))  # scroll
    p.ellipse(0.08, 0.3, 0.05, 0.03, BLACK)  # chin rest
    for x in (-0.015, -0.005, 0.005, 0.015):
        p.line([(x, -0.44), (x, 0.26)], (220, 220, 210), 0.006)
    if shown:  # the bow across the strings
        p.line([(-0.5, 0.22), (0.5, 0.02)], WOOD, 0.025, part=False)
        p.line([(-0.48, 0.25), (0.48, 0.05)], WHITE, 0.015, part=False)


def _draw_drum(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    for s in (-1, 1):
        p.line([(0.3 * s, 0.3), (0.42 * s, 0.48)], (150, 150, 150), 0.03)  # stand
    p.ellipse(0, 0.3, 0.4, 0.08, _shade(c, 0.7))  # bottom rim
    p.rect(-0.4, -0.1, 0.4, 0.3, c)  # shell
    xs = np.linspace(-0.38, 0.38, 9)
    ys = np.where(np.arange(9) % 2 == 0, -0.05, 0.26)
    p.line(np.stack([xs, ys], 1), (230, 230, 230), 0.015)  # lacing
    p.ellipse(0, -0.1, 0.4, 0.1, (235, 230, 215), outline=(120, 120, 120))  # drum head
    if shown:  # drumsticks striking, with an impact burst
        p.line([(-0.48, -0.48), (-0.08, -0.12)], (220, 180, 120), 0.035, part=False)
        p.line([(0.48, -0.5), (0.1, -0.13)], (220, 180, 120), 0.035, part=False)
        for a in np.deg2rad([200, 240, 270, 300, 340]):
            p.line([(0.16 * np.cos(a), -0.14 + 0.12 * np.sin(a)), (0.26 * np.cos(a), -0.14 + 0.2 * np.sin(a))],
                   YELLOW, 0.02, part=False)


def _draw_car(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.55)
    p.polygon([(-0.3, -0.05), (-0.18, -0.3), (0.16, -0.3), (0.32, -0.05)], c)  # cabin
    p.rect(-0.48, -0.06, 0.48, 0.18, c)  # body
    p.polygon([(-0.26, -0.07), (-0.16, -0.26), (-0.02, -0.26), (-0.02, -0.07)], GLASS)  # windows
    p.polygon([(0.02, -0.07), (0.02, -0.26), (0.14, -0.26), (0.27, -0.07)], GLASS)
    p.line([(0.0, -0.06), (0.0, 0.16)], dark, 0.012)  # door
    for x in (-0.3, 0.3):
        p.ellipse(x, 0.2, 0.11, 0.11, BLACK)  # wheels
        p.ellipse(x, 0.2, 0.05, 0.05, (170, 170, 170))
    p.ellipse(-0.46, 0.0, 0.02, 0.035, (200, 30, 30))  # tail light
    p.ellipse(0.45, 0.0, 0.035, 0.045, (255, 250, 170) if shown else (120, 120, 110))  # headlight
    if shown:
        p.polygon([(0.48, -0.02), (0.78, -0.15), (0.78, 0.17)], (255, 245, 170), part=False)  # beam


def _draw_bell(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.55)
    side = 1 if frame % 2 == 0 else -1
    if shown:  # swinging from its hanger
        p.rotate(24 * side, (0.0, -0.45))
    p.rect(-0.04, -0.5, 0.04, -0.38, (80, 70, 60))  # hanger
    p.polygon([(-0.09, -0.4), (0.09, -0.4), (0.19, -0.32), (0.23, -0.05), (0.27, 0.14), (0.38, 0.25),
               (-0.38, 0.25), (-0.27, 0.14), (-0.23, -0.05), (-0.19, -0.32)], c, outline=dark)
    p.line([(-0.26, 0.1), (0.26, 0.1)], dark, 0.025)  # bands
    p.line([(-0.21, -0.25), (0.21, -0.25)], dark, 0.02)
    p.ellipse(0.1 * side if shown else 0.0, 0.31, 0.06, 0.06, (70, 60, 50))  # clapper
    if shown:
        for r in (0.45, 0.52):  # motion arcs behind the swing
            a = np.deg2rad(np.linspace(100, 150, 6) if side > 0 else np.linspace(30, 80, 6))
            p.line(np.stack([r * np.cos(a), -0.45 + r * np.sin(a)], 1), WHITE, 0.02, part=False)


PAINTERS: dict[str, Callable[[_Painter, RGB, bool, int], None]] = {  # (painter, colour, state shown, frame)
    "dog": _draw_dog, "cat": _draw_cat, "bird": _draw_bird, "baby": _draw_baby, "guitar": _draw_guitar,
    "piano": _draw_piano, "violin": _draw_violin, "drum": _draw_drum, "car": _draw_car, "bell": _draw_bell,
}


# ---------------------------------------------------------------------------------------------
# Frames.

def _background(rng: np.random.Generator, plan: _Plan, size: int) -> np.ndarray:
    """(H, W, 3) float: upper/lower colours split at the horizon, two scales of texture, blobs."""
    from scipy.ndimage import zoom  # heavy (~0.2 s to import): keeps `import pipeline.config` cheap

    _, upper, lower = BACKGROUNDS[plan.background]
    y = (np.arange(size) / size)[:, None, None]
    blend = np.clip((y - plan.horizon) * size / 4 + 0.5, 0, 1)  # a few pixels of soft horizon
    shade = 1.0 - 0.15 * np.abs(y - plan.horizon)
    base = ((1 - blend) * np.array(upper) + blend * np.array(lower)) * shade
    base = np.broadcast_to(base, (size, size, 3)).copy()
    for cells, amp in ((5, 14.0), (20, 6.0)):
        grid = rng.normal(0, amp, (cells, cells, 3))
        base += zoom(grid, (size / cells, size / cells, 1), order=1)[:size, :size]
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):  # faint stones / clouds
        cx, cy = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(0.03, 0.1, 2) * size
        tone = upper if cy < plan.horizon * size else lower
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_shade(tone, rng.uniform(0.8, 1.2)))
    return np.asarray(image, dtype=np.float64)


def _render_frame(rng: np.random.Generator, plan: _Plan, base: np.ndarray, t: int,
                  size: int) -> tuple[Image.Image, np.ndarray]:
    """The frame and its (H, W) uint8 class-index mask of the objects sounding at second t."""
    noisy = base + rng.normal(0, 4, base.shape) + rng.uniform(-6, 6)  # sensor noise and lighting
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 0)
    frame_draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for o in plan.objects:
        # silent objects paint background into the mask so they occlude sounding ones correctly
        value = o.cls + 1 if o.sounding[t] else 0
        painter = _Painter(frame_draw, mask_draw, value, o.centres[t], o.size, o.angle, o.flip)
        PAINTERS[CLASS_NAMES[o.cls]](painter, o.rgb, bool(o.shown[t]), t)
    return image, np.asarray(mask)

