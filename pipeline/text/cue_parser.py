"""From an LLM's free-text answer to a normalized list of sounding-object cues.

Every cue template asks for a last line `Answer: [object, object]`, but chat models wander: they
add reasoning before and after, write `Answer: a, b and c`, JSON, bulleted lists under "sounding
objects:", or a sentence saying nothing sounds. The parser looks for the answer in that order of
trust (the last `Answer:` line, an inline "the answer is", JSON, a "sounding objects are" header, a
"nothing is making sound" statement) and normalizes each name the same way: lower case, articles,
numbers and adjectives dropped ("two brown dogs" -> "dog"), singular, deduplicated in order, at most
max_cues. An answer that cannot be read gives status 'error'; the caller keeps the raw text.

Singulars, adjectives and compounds ("fire truck") come from WordNet where it is installed
(pipeline.text.noun_cues), from small rule sets otherwise.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from pipeline.text.noun_cues import is_compound, is_modifier, singular, wordnet_or_none

# For backends with constrained decoding; "reasoning" comes first so the model reasons before answering.
CUES_JSON_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "sounding_objects": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["reasoning", "sounding_objects"],
}

_MAX_WORDS = 4  # a longer "object name" is a sentence the parser failed to cut

_LEADING = frozenset(
    """a an the this that these those some any several many few multiple various numerous both all each
    every other another more its his her their our my your one two three four five six seven eight nine
    ten eleven twelve dozen dozens couple pair lots lot possibly probably likely maybe perhaps also only
    either""".split()
)
# "a group of birds" -> "birds"; "the sound of a dog barking" -> "dog barking".
_COLLECTIVES = frozenset(
    """group groups pair pairs couple flock flocks herd herds crowd crowds pack packs set sets bunch team
    number lot lots swarm school pod sound sounds noise noises voice voices""".split()
)
# Words no object name contains: a leftover one means the item is a sentence.
_FUNCTION_WORDS = frozenset(
    """i me you he him she her they them we us it is are was were be been being am do does did can could
    will would shall should may might must not cannot can't don't doesn't isn't aren't there here what
    which who how why when where if so because but or nor than then also very""".split()
)
_NONE_WORDS = frozenset({"none", "nothing", "n/a", "na", "null", "nil", "no", "empty", "nobody", "no one"})

# Where an item stops: a relative clause, a verb, a place, an explanation.
_ITEM_CUT = re.compile(
    r"\s*[:\u2013\u2014]\s.*$|\s+-\s.*$|(?:^|\s+)(?:who|which|that|is|are|was|were|because|since|while|with|in|on|at|"
    r"near|from|by|making|producing|emitting|as|when|to|if|could|can|may|might|would|seems?|appears?)\b.*$"
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)]|\(\d+\)|[a-z][.)])\s+(.*\S)\s*$", re.IGNORECASE)
_ANSWER_LINE = re.compile(
    r"^[ \t>#*_-]*(?:final\s+)?answer[ \t*_]*[:\uff1a][ \t*_]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_INLINE_ANSWER = re.compile(
    r"\b(?:final\s+)?answer\s+(?:is|would\s+be|will\s+be)\b\s*:?[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE
)
_LEAD_IN = re.compile(
    r"(?:(?:potential|possible|likely|most\s+likely|main|final)\s+)?"
    r"(?:sound(?:ing|-making)\s+objects?|sound(?:ing)?\s+sources?|sources?\s+of\s+(?:the\s+)?sound|"
    r"objects?\s+(?:that\s+(?:are|is|could\s+be|can\s+be|might\s+be)\s+|which\s+(?:are|is)\s+)?"
    r"(?:making|producing|emitting)\s+(?:a\s+|the\s+|any\s+)?sounds?)"
    r"(?:\s+(?:in|for|of)\s+(?:this|the)\s+(?:scene|image|description|frame|picture|video))?"
    r"\s*(?:(?:are|is|would\s+be|could\s+be|include|includes)"
    r"(?:\s+(?:likely|probably|most\s+likely|possibly|as\s+follows))?(?:\s+to\s+be)?\s*:?|:)",
    re.IGNORECASE,
)
# After a lead-in, an inline list must start like a list, not like "are plausible because".
_LIST_START = re.compile(
    r"^\s*(?:\[|[\"'*]|(?:a|an|the|some|two|three|four|several|both|none|nothing|no)\b)", re.IGNORECASE
)
_NONE_ANSWER = re.compile(
    r"^(?:none|nothing|n/?a|null|nil|empty|nobody|no\b|there\s+(?:are|is)\s+no\b|not\s+any\b|\[\s*\])",
    re.IGNORECASE,
)
_NONE_STATEMENT = re.compile(
    r"\b(?:no|none\s+of\s+the)\s+(?:[a-z]+\s+){0,3}?(?:is|are)\s+(?:currently\s+)?(?:making|producing|emitting)"
    r"\s+(?:any\s+|a\s+)?sounds?"
    r"|\bnothing\s+(?:in\s+the\s+\w+\s+)?(?:is|seems\s+to\s+be)\s+(?:making|producing|emitting)"
    r"|\bthere\s+(?:are|is)\s+no\s+(?:sounding|sound-making|sound)\b"
    r"|\bno\s+sounding\s+objects?\b",
    re.IGNORECASE,
)
_EXCEPTIONS = re.compile(r"\b(?:other\s+than|except|apart\s+from|besides|but\s+(?:the|a))\b", re.IGNORECASE)
_SPLIT = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s*;\s*|\s+and\s+|\s+or\s+|\s*&\s*|\s+plus\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<![A-Z])\.(?:\s|$)|\n")
# A model that goes on to invent further few-shot examples after answering.
_NEXT_EXAMPLE = re.compile(r"^[ \t]*(?:Example\s+\d+|Description\s*:)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ParsedCues:
    cues: list[str] = field(default_factory=list)
    status: Literal["ok", "error"] = "ok"
    error: str | None = None


class _Unreadable(ValueError):
    """An answer was found but does not read as a list of object names."""


def _check_max(max_cues: int) -> None:
    if not isinstance(max_cues, int) or isinstance(max_cues, bool) or max_cues < 1:
        raise ValueError(f"max_cues must be a positive integer, got {max_cues!r}")


def _is_verb_participle(word: str) -> bool:
    if not word.endswith("ing") or len(word) < 5:
        return False
    wn = wordnet_or_none()
    return wn is None or wn.morphy(word, wn.VERB) is not None


def normalize_cue(raw: str) -> str | None:
    """One object name, normalized ("Two brown Dogs." -> "dog"); None for a 'none' item.

    Raises ValueError when the item does not read as an object name (empty, a sentence)."""
    s = raw.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = re.sub(r"\([^)]*\)?", " ", s)  # "man (singing)"
    bullet = _BULLET.match(s)
    if bullet:
        s = bullet.group(1)
    s = s.strip(" \t\r\n\"'`*_.,;:!?[]{}")
    if s in _NONE_WORDS:
        return None
    s = _ITEM_CUT.sub("", s).strip(" \"'`*_.,;:!?")
    words = [w.strip("\"'`*_.,;:!?") for w in s.split()]
    words = [w[:-2] if w.endswith("'s") else w for w in words if w]
    if "of" in words:
        k = words.index("of")
        head = [w for w in words[:k] if w not in _LEADING or w in _COLLECTIVES]
        # "a group of birds", "one of the men" -> what follows; "a bottle of water" -> "bottle".
        words = words[k + 1 :] if all(w in _COLLECTIVES for w in head) else words[:k]
    while words and (words[0] in _LEADING or words[0].isdigit()):
        words = words[1:]
    if not words:
        raise _Unreadable(f"{raw.strip()!r} names no object")
    if " ".join(words) in _NONE_WORDS:
        return None
    bad = [w for w in words if w in _FUNCTION_WORDS or not re.fullmatch(r"[a-z][a-z'-]*", w)]
    if bad or len(words) > _MAX_WORDS:
        raise _Unreadable(f"{raw.strip()!r} does not read as an object name")
    # "man playing guitar" -> "man": a participle after the head noun starts a clause.
    for k in range(1, len(words)):
        if _is_verb_participle(words[k]) and is_compound(words) is None:
            words = words[:k]
            break
    while len(words) > 1 and is_compound(words) is None and is_modifier(words[0]):
        words = words[1:]
    words[-1] = singular(words[-1])
    return " ".join(words)


def _items_from(segment: str) -> list[str]:
    """Split an answer segment into raw items; [] for a 'none' answer."""
    s = segment.strip().strip("*_` \t")
    leads = list(_LEAD_IN.finditer(s))
    if leads:
        s = s[leads[-1].end() :].strip().strip("*_` \t")
    if "[" in s:
        start = s.index("[")
        end = s.find("]", start)
        inner = s[start + 1 : end if end != -1 else len(s)]
        try:
            loaded = json.loads(f"[{inner}]")
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, list) and all(isinstance(x, str) for x in loaded):
            return loaded
        return [x for x in _SPLIT.split(inner) if x.strip()]
    if _NONE_ANSWER.match(s.strip("\"'` ")):
        return []
    first = _SENTENCE_END.split(s, maxsplit=1)[0]
    items = [x for x in _SPLIT.split(first) if x.strip()]
    if not items:
        raise _Unreadable(f"{segment.strip()!r} holds no object names")
    return items


def _bullets_after(text: str, pos: int) -> list[str]:
    """The bulleted or numbered lines right after position pos (blank lines before them allowed)."""
    items: list[str] = []
    for line in text[pos:].splitlines()[1:]:
        if not line.strip():
            if items:
                break
            continue
        m = _BULLET.match(line)
        if not m:
            break
        items.append(m.group(1))
    return items


def _normalize_all(items: list[str], max_cues: int) -> list[str]:
    cues: list[str] = []
    for item in items:
        try:
            cue = normalize_cue(item)
        except _Unreadable:
            if cues:  # "dog, man, since both are active": the rest explains the answer
                break
            raise
        if cue is not None and cue not in cues:
            cues.append(cue)
    return cues[:max_cues]


def _after_header(text: str, pos: int) -> str | list[str] | None:
    """What follows a header ending its line at pos: a bulleted list, else the next non-empty line."""
    bullets = _bullets_after(text, pos)
    if bullets:
        return bullets
    following = [line for line in text[pos:].splitlines()[1:] if line.strip()]
    return following[0] if following else None


def _candidates(text: str):
    """(source, segment or raw items) for each place an answer may be, most trusted first."""
    answers = list(_ANSWER_LINE.finditer(text))
    if answers:
        m = answers[-1]
        rest = m.group(1).strip("*_ \t")
        yield "Answer line", rest if rest else _after_header(text, m.start())
    inline = list(_INLINE_ANSWER.finditer(text))
    if inline:
        yield "inline answer", inline[-1].group(1)
    json_items = _json_items(text)
    if json_items is not None:
        yield "JSON", json_items
    for m in reversed(list(_LEAD_IN.finditer(text))):
        rest = text[m.end() :].split("\n", 1)[0]
        if not rest.strip():
            bullets = _bullets_after(text, m.end() - 1)
            if bullets:
                yield "list under a header", bullets
        elif _LIST_START.match(rest):
            yield "header", rest


def _json_items(text: str) -> list[str] | None:
    """The items of the last JSON object with 'sounding_objects' or JSON list of strings in the text."""
    decoder = json.JSONDecoder()
    found = None
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        if isinstance(value, dict) and isinstance(value.get("sounding_objects"), list):
            value = value["sounding_objects"]
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            found = value
        pos = end


def parse_cues(text: str, max_cues: int = 4) -> ParsedCues:
    """Cues from a model's free-text answer; status 'error' (with the reason) when none can be read."""
    _check_max(max_cues)
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}")
    if not text.strip():
        return ParsedCues([], "error", "empty response")
    first_answer = _ANSWER_LINE.search(text)
    if first_answer:
        invented = _NEXT_EXAMPLE.search(text, first_answer.end())
        text = text[: invented.start()] if invented else text
    problems: list[str] = []
    for source, found in _candidates(text):
        if found is None:
            problems.append(f"{source}: nothing after it")
            continue
        try:
            items = _items_from(found) if isinstance(found, str) else found
            return ParsedCues(_normalize_all(items, max_cues))
        except _Unreadable as exc:
            problems.append(f"{source}: {exc}")
    statement = _NONE_STATEMENT.search(text)
    if statement and not _EXCEPTIONS.search(_sentence_around(text, statement.start(), statement.end())):
        return ParsedCues([])
    reason = "; ".join(problems) or "no answer found (no 'Answer:' line, JSON or list of sounding objects)"
    return ParsedCues([], "error", reason)


def _sentence_around(text: str, start: int, end: int) -> str:
    left = max(text.rfind(c, 0, start) for c in ".!?\n") + 1
    rights = [i for i in (text.find(c, end) for c in ".!?\n") if i != -1]
    return text[left : min(rights) if rights else len(text)]


def parse_structured(json_text: str, max_cues: int = 4) -> ParsedCues:
    """Cues from a reply constrained to CUES_JSON_SCHEMA; status 'error' when it does not match."""
    _check_max(max_cues)
    if not isinstance(json_text, str):
        raise TypeError(f"json_text must be a string, not {type(json_text).__name__}")
    s = json_text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", s, re.DOTALL)
    if fence:
        s = fence.group(1)
    try:
        value = json.loads(s)
    except json.JSONDecodeError as exc:
        return ParsedCues([], "error", f"not JSON: {exc}")
    items = value.get("sounding_objects") if isinstance(value, dict) else None
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        return ParsedCues([], "error", "JSON has no 'sounding_objects' list of strings")
    try:
        return ParsedCues(_normalize_all(items, max_cues))
    except _Unreadable as exc:
        return ParsedCues([], "error", str(exc))
