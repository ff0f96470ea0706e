"""Scene descriptions: the reference caption of one frame, naming every visible object with its
colour, position and drawn state (what a captioner would see, not which objects sound).

Sentence templates and optional phrases are drawn from the plan's random stream, so the calls'
order in plans._plan is part of the output.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.synth.classes import CLASSES, _ObjectClass

if TYPE_CHECKING:  # plans.py imports this module; the type is only for annotations
    from pipeline.data.synth.plans import _Object

_OPENERS = ("A scene {where}.", "This picture was taken {where}.", "The image shows {count} {things} {where}.")
_COUNTS = ("one", "two", "three")


def _position(centre: np.ndarray, size: int) -> str:
    col = "left" if centre[0] < size / 3 else "right" if centre[0] > 2 * size / 3 else ""
    row = "top" if centre[1] < size / 3 else "bottom" if centre[1] > 2 * size / 3 else ""
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the center"


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _object_sentence(rng: np.random.Generator, cls: _ObjectClass, colour: str, pos: str, state: str) -> str:
    np_ = _a(cls.noun.format(colour=colour))
    tail = f" {state}" if state else ""
    templates = (
        f"{_cap(np_)}{tail} {cls.verb} {pos}.",
        f"{_cap(pos)}, there is {np_}{tail}.",
        f"There is {np_} {pos}" + (f", {state}." if state else "."),
        f"{_cap(np_)}{tail} can be seen {pos}.",
        f"We see {np_}{tail} {pos}.",
    )
    return templates[int(rng.integers(len(templates)))]


def _describe(rng: np.random.Generator, objects: list[_Object], t: int, where: str, size: int) -> tuple[str, list[int]]:
    """The frame's description (what is drawn) and the left-to-right object order it uses."""
    order = sorted(range(len(objects)), key=lambda i: objects[i].centres[t, 0])
    sentences = []
    if rng.random() < 0.5:
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
        sentences.append(opener.format(where=where, count=_COUNTS[len(objects) - 1],
                                       things="thing" if len(objects) == 1 else "things"))
    for i in order:
        o = objects[i]
        cls = CLASSES[o.cls]
        state = cls.state if o.shown[t] else (cls.rest if rng.random() < 0.5 else "")
        sentences.append(_object_sentence(rng, cls, o.colour, _position(o.centres[t], size), state))
    return " ".join(sentences), order
