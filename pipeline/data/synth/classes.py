"""The ten sound-capable object classes and the six backgrounds a synthetic scene is built from.

Each class has its colour options, the phrases its description uses, and how it may be posed.
How a class is drawn lives in drawing.py (`PAINTERS`) and how it sounds in sounds.py (`SOUNDS`),
both keyed by class name. Class k (0-based, in CLASSES order) has mask index k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class _ObjectClass:
    name: str
    colours: tuple[tuple[str, RGB], ...]  # named colour options
    state: str  # phrase for the drawn sounding state, after the noun
    rest: str  # phrase for the drawn silent look
    verb: str  # how it sits in a sentence ("stands", "is parked")
    noun: str  # noun phrase template with {colour}
    tilt: float = 0.0  # max random tilt in degrees
    flips: bool = False  # may face either way


CLASSES: tuple[_ObjectClass, ...] = (
    _ObjectClass("dog", (("brown", (150, 95, 50)), ("golden", (215, 165, 80))), "with its mouth open",
                 "with its mouth closed", "stands", "{colour} dog", flips=True),
    _ObjectClass("cat", (("gray", (130, 130, 135)), ("orange", (230, 130, 40))), "with its mouth open",
                 "with its mouth closed", "sits", "{colour} cat"),
    _ObjectClass("bird", (("blue", (50, 110, 220)), ("yellow", (240, 210, 40))), "with its beak open",
                 "with its beak closed", "perches", "{colour} bird", flips=True),
    _ObjectClass("baby", (("pink", (240, 150, 180)), ("light blue", (140, 190, 240))),
                 "crying with its mouth open", "with a calm face", "sits", "baby in {colour} clothes"),
    _ObjectClass("guitar", (("red", (210, 40, 40)), ("purple", (140, 60, 170))),
                 "with strings being strummed", "with still strings", "rests", "{colour} guitar", tilt=30),
    _ObjectClass("piano", (("black", (30, 30, 35)), ("white", (235, 235, 230))), "with its keys being played",
                 "with its keys untouched", "stands", "{colour} piano"),
    _ObjectClass("violin", (("dark red", (130, 35, 30)), ("orange", (200, 100, 30))),
                 "being played with a bow", "without a bow", "lies", "{colour} violin", tilt=30),
    _ObjectClass("drum", (("silver", (185, 185, 195)), ("green", (40, 150, 80))), "being hit with drumsticks",
                 "with no drumsticks", "stands", "{colour} drum"),
    _ObjectClass("car", (("teal", (20, 140, 140)), ("navy", (30, 40, 110))), "with its headlights on",
                 "with its headlights off", "is parked", "{colour} car", flips=True),
    _ObjectClass("bell", (("gold", (220, 175, 40)), ("bronze", (175, 115, 50))), "swinging back and forth",
                 "hanging still", "is shown", "{colour} bell"),
)
CLASS_NAMES = tuple(c.name for c in CLASSES)  # class k (0-based) has mask index k + 1

BACKGROUNDS: tuple[tuple[str, RGB, RGB], ...] = (  # (where, upper colour, lower colour)
    ("in a grassy field", (150, 195, 235), (95, 150, 70)),
    ("on a sandy beach", (170, 210, 235), (220, 200, 150)),
    ("in a gray room", (175, 175, 180), (120, 110, 105)),
    ("in a living room", (225, 210, 180), (140, 100, 70)),
    ("in a park at dusk", (120, 110, 160), (60, 90, 60)),
    ("on a snowy street", (200, 205, 215), (230, 232, 238)),
)
