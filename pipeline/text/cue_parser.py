"""From an LLM's free-text answer to a normalized list of sounding-object cues.

Every cue template asks for a last line `Answer: [object, object]`, but chat models wander: they
add reasoning before and after, number the items, answer in JSON or Markdown, copy the TeSO
paper's own output form (`Potential sounding objects: a, b`, Fig. 3's "P.S.O."), or end with a
sentence. The parser looks for the answer in these places, most trusted first, and takes the
first one that reads as a list of object names:

1. The last `Answer:` line of the answer proper: `Answer: [dog, man]`, `Final answer: dog, man`,
   `The answer: ...`, `Answer = [...]`, `Answer - ...`, `Answer (sounding objects): ...`, an
   `Answer:` after a sentence on the same line, or a `### Answer` header over a list or a line.
   Numbered items on it (`Answer: 1) dog 2) man`) are split. Anything after it that starts a
   further invented few-shot example (`Example 7`, `Description:`) is dropped first.
2. An inline "the answer is ..." (`So the answer is the vacuum cleaner.`).
3. JSON, fenced or not: the list under a key that names sounding objects or the answer
   (`sounding_objects`, `"sounding objects"`, `sounding`, `answer`), else the last JSON list of
   strings. A list under `objects` alone is the scene's inventory, not an answer.
4. The last label line of the paper's form and its variants: `Potential sounding objects: ...`,
   `P.S.O.: ...`, `Sounding object(s): ...`, `**Sounding objects:** ...`, or a header
   (`### Sounding Objects`) over a bulleted or numbered list.
5. Statements in the text, the one in the last sentence first (the conclusion comes last):
   - "the sounding objects are X" / "the objects making sound are X" / "X is the sounding object"
     (`Therefore, the sounding object is: the siren.`, `..., so the ambulance is the sounding object.`);
   - where the sound comes from: "the sound comes from X", "the sound is produced by X",
     "the loudest sound is X"; "X and Y are making sound", "only X is making noise",
     "nothing except X is making a sound";
   - "nothing is making sound" in its many wordings gives no cues (`[]`), unless the sentence
     keeps something back ("other than", "except", "nothing else"): that is an error, not a guess.
   Within one sentence a sounding-objects statement wins over a making-sound clause, which is
   usually the explanation ("the sounding objects are X, since the dog is making noise ...").

Each name is normalized the same way: lower case, parentheticals, articles, numbers and
adjectives dropped ("two brown dogs (barking)" -> "dog"), clauses cut ("the man who is singing"),
singular, deduplicated in order, at most max_cues.

Where the parser cannot decide it says so: status 'error' with the reasons, never a guess. An
answer that hedges ("not sure", "cannot tell", "unable to determine"), repeats the template's
placeholder (`[object, object]`), names something that is not a noun, or stops before answering is
an error; the caller keeps the raw text.

Singulars, adjectives and compounds ("fire truck") come from WordNet where it is installed
(pipeline.text.noun_cues), from small rule sets otherwise.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Iterator, Literal

from pipeline.text import noun_cues as _noun_cues
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
    which who how why when where if so because but or nor than then also very yes okay""".split()
)
_NONE_WORDS = frozenset({"none", "nothing", "n/a", "na", "null", "nil", "no", "empty", "nobody", "no one", "silence"})
# The template's own placeholder ("Answer: [object, object]") echoed back names nothing.
_PLACEHOLDERS = frozenset({"object", "thing", "item", "something", "noun", "name", "object name", "sounding object"})
# An answer that says the model does not know is an error, not a list ("Answer: unable to determine").
_UNDECIDED = re.compile(
    r"\b(?:unknown|unclear|uncertain|unsure|undetermined|undecided|indeterminate|not\s+(?:sure|certain|clear)|"
    r"cannot|can't|can\s+not|unable|impossible|difficult\s+to|hard\s+to|depends\s+on|don't\s+know|no\s+idea|"
    r"not\s+enough\s+information)\b",
    re.IGNORECASE,
)

# Where an item stops: a relative clause, a verb, a place, an explanation.
_ITEM_CUT = re.compile(
    r"\s*[:\u2013\u2014]\s.*$|\s+-\s.*$|(?:^|\s+)(?:who|which|that|whose|is|are|was|were|because|since|while|with|"
    r"in|on|at|near|from|by|for|around|under|over|behind|beside|next|inside|outside|across|along|through|into|"
    r"onto|against|above|below|nearby|overhead|there|here|making|producing|emitting|as|when|to|if|could|can|"
    r"may|might|would|seems?|appears?)\b.*$"
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)]|\(\d+\)|[a-z][.)])\s+(.*\S)\s*$", re.IGNORECASE)
# An item that is only a relative clause ("the dogs, which are barking, and the children") is
# skipped; any other unreadable item ends the list ("dog, man, since both are active").
_RELATIVE = re.compile(r"^\s*(?:and\s+)?(?:who|which|that|whose|whom|where)\b", re.IGNORECASE)
# An item that says its object is silent ("the cat; the dog is asleep") is the model's comment,
# not a cue: it is skipped, and a list of nothing but such items is an error.
_SILENT_ITEM = re.compile(
    r"\b(?:(?:is|are|was|were|seems?|appears?|remains?|stays?)\s+(?:also\s+|just\s+|completely\s+)?"
    r"(?:not|asleep|silent|quiet|sleeping|still|off|idle|parked|unplugged|switched\s+off|turned\s+off|motionless)"
    r"|isn't|aren't|wasn't|weren't|doesn't|don't)\b",
    re.IGNORECASE,
)
# Inline enumerators on one line: "1) dog 2) cat", "1. guitar 2. man", "(1) car (2) truck".
_ENUMERATOR = re.compile(r"(?:^|(?<=[\s,;]))\(?\d{1,2}[.)](?=\s)")
# A parenthetical, innermost first; "(1)" is an enumerator, not an aside.
_PARENTHETICAL = re.compile(r"\((?!\d{1,2}\))[^()]*\)")

# Where a label may start: the start of a line, or after a finished sentence on the same line.
_LINE_START = r"(?:^|(?<=[.!?])[ \t]+)[ \t>#*_-]*"
_ANSWER_LINE = re.compile(
    _LINE_START + r"(?:(?:the|my|our)\s+)?(?:final\s+|short\s+)?answer(?:[ \t]*\([^()\n]{0,40}\))?[ \t*_]*"
    r"(?:[:=\uff1a]|[ \t][-\u2013\u2014](?=[ \t]))[ \t*_]*(.*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# "### Answer" or "**Answer**" alone on its line, the answer below it.
_ANSWER_HEADER = re.compile(r"^[ \t>#*_-]*(?:final\s+)?answer[ \t*_]*$", re.IGNORECASE | re.MULTILINE)
_INLINE_ANSWER = re.compile(
    r"\b(?:final\s+)?answer\s+(?:is|would\s+be|will\s+be)\b\s*:?[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE
)
# The paper's "Potential sounding objects: ..." (P.S.O.) and its variants, as a label on a line.
_LABEL_NAME = (
    r"(?:(?:the\s+)?(?:(?:potential|possible|probable|likely|main|final|actual)\s+)?"
    r"(?:sounding|sound[- ]?(?:making|producing|emitting)|sound)\s+(?:objects?|sources?)(?:\s*\(s\))?"
    r"|p\.?[ \t]?s\.?[ \t]?o\.?s?)"
    r"(?:[ \t]*\([^()\n]{0,30}\))?"  # "Potential Sounding Objects (P.S.O.):"
)
_LABEL = re.compile(
    _LINE_START + _LABEL_NAME + r"[ \t*_]*[:=\uff1a][ \t*_]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_LABEL_HEADER = re.compile(r"^[ \t>#*_-]*" + _LABEL_NAME + r"[ \t*_]*$", re.IGNORECASE | re.MULTILINE)

# Statements in running text (format 5) are built from these.
_SOUND = r"(?:sounds?|noises?)"
_MAKING = r"(?:making|producing|emitting|creating)"
# What a sentence calls the sounding objects: "sounding objects", "objects making sound", ...
_SOURCE_NOUN = (
    r"(?:sound(?:ing|-making|-producing|-emitting)\s+objects?|sound(?:ing)?\s+sources?|"
    r"sources?\s+of\s+(?:the\s+)?(?:sounds?|noises?)|"
    r"objects?\s+(?:that\s+(?:are|is|could\s+be|can\s+be|might\s+be|would\s+be)\s+|which\s+(?:are|is)\s+)?"
    r"(?:making|producing|emitting|creating)\s+(?:a\s+|the\s+|any\s+)?(?:sounds?|noises?)|"
    r"objects?\s+(?:that|which)\s+(?:make|makes|produce|produces|emit|emits)\s+(?:a\s+|the\s+|any\s+)?"
    r"(?:sounds?|noises?)|"
    r"sounds?\s+(?:heard|(?:you|we)\s+(?:would\s+|can\s+)?hear))"
)
_PLACE = (
    r"(?:\s+(?:here|(?:in|for|of|from)\s+(?:this|the|that)\s+(?:given\s+|provided\s+|above\s+)?"
    r"(?:scene|image|description|frame|picture|video|photo|caption|case)))?"
)
# "the sounding objects (in this scene) are (likely) (to be): X"
_LEAD_IN = re.compile(
    r"(?:(?:potential|possible|probable|likely|most\s+likely|main|primary|final|only)\s+)*" + _SOURCE_NOUN + _PLACE
    + r"\s*(?:(?:are|is|would\s+be|could\s+be|will\s+be|include|includes|seems?\s+to\s+be|appears?\s+to\s+be)"
    r"(?:\s+(?:likely|probably|most\s+likely|possibly|clearly|definitely|mainly|mostly|as\s+follows|only))?"
    r"(?:\s+to\s+be)?\s*:?|:)",
    re.IGNORECASE,
)
# "X is the sounding object", "X and Y are the sound sources": the answer is the subject.
_IS_THE_SOURCE = re.compile(
    r"\b(?:is|are)\s+(?:the\s+)?(?:only\s+|main\s+|primary\s+)?(?:sounding\s+objects?|sound(?:ing)?\s+sources?|"
    r"sources?\s+of\s+(?:the\s+)?(?:sounds?|noises?))\b",
    re.IGNORECASE,
)
# "X is making sound", "X and Y are the ones producing sound", "only X is making noise".
_MAKING_SOUND = re.compile(
    r"\b(?:is|are)\s+(?:also\s+|currently\s+|clearly\s+|actively\s+|definitely\s+)?"
    r"(?:the\s+(?:only\s+)?(?:ones?|objects?)\s+)?(?:making|producing|emitting|creating|generating)\s+"
    r"(?:a\s+|the\s+|some\s+)?(?:loud\s+)?(?:sounds?|noises?)\b",
    re.IGNORECASE,
)
# "the sound comes from X", "the sound is produced by X", "the loudest sound is X".
_SOUND_FROM = re.compile(
    r"\b(?:the\s+)?(?:only\s+|main\s+|loudest\s+|primary\s+)?(?:sounds?|noises?)" + _PLACE
    + r"\s+(?:(?:is|are|must\s+be|would\s+be|seems\s+to\s+be|appears\s+to\s+be)\s+)?"
    r"(?:(?:coming|comes|come)\s+from|(?:being\s+)?(?:produced|made|generated|created|emitted|caused)\s+by)\s+"
    r"|\b(?:the\s+)?(?:only|main|loudest|primary|dominant)\s+(?:sound|noise)" + _PLACE + r"\s+(?:is|would\s+be)\s+",
    re.IGNORECASE,
)
# "nothing except the clock is making a sound", "no object is making sound other than the fan".
_SOUND_EXCEPT = re.compile(
    r"\b(?:nothing|no\s+(?:other\s+)?(?:objects?|ones?|things?)|none\s+of\s+the\s+(?:other\s+)?(?:objects?|things?))"
    r"(?:\s+(?:in|of)\s+(?:this|the)\s+\w+)?\s+"
    r"(?:(?:except|but|other\s+than|apart\s+from|besides|save)\s+(?:for\s+)?(?P<before>.+?)\s+(?:is|are)\s+"
    r"(?:making|producing|emitting|creating)"
    r"|(?:is|are)\s+(?:making|producing|emitting|creating)\s+(?:a\s+|any\s+)?(?:sounds?|noises?)\s*,?\s*"
    r"(?:except|but|other\s+than|apart\s+from|besides|save)\s+(?:for\s+)?(?P<after>[^.;!?\n]+))",
    re.IGNORECASE,
)
# "Nothing is making sound", in the wordings models use.
_NONE_STATEMENT = re.compile(
    r"\b(?:no|none\s+of\s+the|not\s+any\s+of\s+the)\s+(?:[\w-]+\s+){0,5}?(?:is|are)\s+(?:currently\s+|actually\s+)?"
    + _MAKING + r"\s+(?:any\s+|a\s+)?" + _SOUND
    + r"|\bnothing\s+(?:[\w-]+\s+){0,4}?(?:is|seems\s+to\s+be|appears\s+to\s+be)\s+(?:" + _MAKING + r"|sounding)"
    r"|\bnothing\s+" + _MAKING + r"\s+(?:a\s+|any\s+)?" + _SOUND
    + r"|\bthere\s+(?:are|is)\s+no\s+(?:sounding|sound-making|sound-producing|sound-emitting|sound)\b"
    r"|\bthere\s+(?:isn't|is\s+not|aren't|are\s+not)\s+(?:any|anything)\b(?:\s+[\w-]+){0,4}?\s+"
    + _MAKING + r"\s+(?:a\s+|any\s+)?" + _SOUND
    + r"|\bno\s+(?:sounding|sound-making|sound-producing|sound-emitting)\s+objects?\b"
    r"|\bno\s+(?:[\w-]+\s+){0,3}?" + _MAKING + r"\s+(?:any\s+|a\s+)?" + _SOUND
    + r"|\bno\s+" + _SOUND + r"\s+(?:is|are)\s+(?:being\s+)?(?:made|produced|emitted)"
    r"|\b(?:don't|do\s+not|can't|cannot)\s+(?:see|think|believe)\s+(?:that\s+)?(?:there\s+(?:is|are)\s+)?any\s+"
    r"(?:of\s+the\s+)?(?:objects?|things?|ones?)\b(?:\s+[\w-]+){0,6}?\s+" + _MAKING
    + r"|\ball\s+(?:of\s+)?(?:the\s+)?(?:objects?|things?)(?:\s+in\s+(?:the|this)\s+\w+)?\s+"
    r"(?:are|seem\s+to\s+be|appear\s+to\s+be)\s+(?:silent|quiet|soundless)"
    r"|\b(?:the\s+)?(?:whole\s+|entire\s+)?(?:scene|frame|image|room)\s+is\s+(?:completely\s+|totally\s+|entirely\s+)?"
    r"(?:silent|soundless)\b",
    re.IGNORECASE,
)
# A 'nothing sounds' sentence that keeps something back names a source the parser did not read.
_EXCEPTIONS = re.compile(
    r"\b(?:other\s+than|except|apart\s+from|besides|but\s+(?:the|a)|other|else)\b", re.IGNORECASE
)
# A subject with a negation is not a source ("neither the dog nor the cat is making sound").
_NEGATED = re.compile(r"\b(?:no|not|none|nothing|neither|nor|nobody|never|any|which|what|whether)\b", re.IGNORECASE)
# Where the subject of "X is making sound" starts within its sentence.
_CLAUSE_START = re.compile(
    r"[;:]|\b(?:so|but|while|whereas|because|since|however|therefore|thus|hence|then|that|though|although|"
    r"believe|think|say|conclude|guess)\b,?",
    re.IGNORECASE,
)
_NONE_ANSWER = re.compile(
    r"^(?:none|nothing|n/?a|null|nil|empty|nobody|silence\b|no\b|there\s+(?:are|is)\s+(?:no|nothing)\b|"
    r"not\s+any\b|\[\s*\])",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s*;\s*|\s+and\s+|\s+or\s+|\s*&\s*|\s+plus\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<![A-Z])\.(?:\s|$)|\n")
_SENTENCE_BOUNDARY = re.compile(r"(?<![A-Z])[.!?](?=\s|$)|\n")
# A model that goes on to invent further few-shot examples after answering.
_NEXT_EXAMPLE = re.compile(r"^[ \t]*(?:Example\s+\d+|Description\s*:)", re.IGNORECASE | re.MULTILINE)
# JSON keys that hold the answer ("sounding_objects", "sounding objects", "sounding", "answer").
_JSON_KEY = re.compile(
    r"^(?:(?:potential|possible|final)_)?(?:sounding|sound_making|sound_producing|sound)(?:_(?:objects?|sources?))?$"
    r"|^(?:final_)?answers?$|^cues?$"
)


@dataclass(frozen=True)
class ParsedCues:
    cues: list[str] = field(default_factory=list)
    status: Literal["ok", "error"] = "ok"
    error: str | None = None


class _Unreadable(ValueError):
    """An answer was found but does not read as a list of object names."""


class _Undecided(_Unreadable):
    """The answer says the model does not know: no other place in the text overrides that."""


def _check_max(max_cues: int) -> None:
    if not isinstance(max_cues, int) or isinstance(max_cues, bool) or max_cues < 1:
        raise ValueError(f"max_cues must be a positive integer, got {max_cues!r}")


def _is_verb_participle(word: str) -> bool:
    if not word.endswith("ing") or len(word) < 5:
        return False
    wn = wordnet_or_none()
    if wn is None:
        return True
    with _noun_cues._WORDNET_LOCK:  # NLTK's WordNet reader is not thread-safe (see noun_cues)
        return wn.morphy(word, wn.VERB) is not None


def _is_not_noun(word: str) -> bool:
    """True for a word WordNet knows, but not as a noun ("unable", "quiet"); unknown words pass."""
    wn = wordnet_or_none()
    if wn is None:
        return False
    with _noun_cues._WORDNET_LOCK:
        return bool(wn.synsets(word)) and wn.morphy(word, wn.NOUN) is None


def _without_parentheticals(s: str) -> str:
    """ "woman (talking on the phone (loudly))" -> "woman"; an unclosed "(" drops the rest."""
    previous = None
    while previous != s:
        previous, s = s, _PARENTHETICAL.sub(" ", s)
    return re.sub(r"\((?!\d{1,2}\)).*$", " ", s)


def normalize_cue(raw: str) -> str | None:
    """One object name, normalized ("Two brown Dogs." -> "dog"); None for a 'none' item.

    Raises ValueError when the item does not read as an object name (empty, a sentence)."""
    s = raw.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = _without_parentheticals(s).replace(")", " ")  # "man (singing)"
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
        head = [w for w in words[:k] if (w not in _LEADING and not is_modifier(w)) or w in _COLLECTIVES]
        # "a group of birds", "one of the men" -> what follows; "a bottle of water" -> "bottle".
        words = words[k + 1 :] if all(w in _COLLECTIVES for w in head) else words[:k]
    while words and (words[0] in _LEADING or words[0].isdigit()):
        words = words[1:]
    if not words:
        raise _Unreadable(f"{raw.strip()!r} names no object")
    if " ".join(words) in _NONE_WORDS:
        return None
    bad = [w for w in words if w in _FUNCTION_WORDS or not re.fullmatch(r"[a-z][a-z'-]*", w)]
    if bad:
        raise _Unreadable(f"{raw.strip()!r} does not read as an object name")
    # "man playing an acoustic guitar" -> "man": a participle after the head noun starts a clause
    # (cut before the length check, which is there for sentences, not for a name and its clause).
    for k in range(1, len(words)):
        if _is_verb_participle(words[k]) and is_compound(words) is None:
            words = words[:k]
            break
    if len(words) > _MAX_WORDS:
        raise _Unreadable(f"{raw.strip()!r} does not read as an object name")
    while len(words) > 1 and is_compound(words) is None and is_modifier(words[0]):
        words = words[1:]
    words[-1] = singular(words[-1])
    return " ".join(words)


def _read_cue(raw: str) -> str | None:
    """normalize_cue, plus what only a model's answer gets wrong: the template's placeholder, and a
    head word that is no noun ("unable", "silent": the item is a sentence fragment, not a name)."""
    cue = normalize_cue(raw)
    if cue is None:
        return None
    if len(cue) < 2:  # "The correct answer is B: the dog": a choice's letter, not a name
        raise _Unreadable(f"{raw.strip()!r} does not name an object")
    if cue in _PLACEHOLDERS:
        raise _Undecided(f"{raw.strip()!r} is the template's placeholder, not an object")
    if _is_not_noun(cue.split()[-1]):
        raise _Unreadable(f"{raw.strip()!r} does not name an object ({cue.split()[-1]!r} is not a noun)")
    return cue


def _check_decided(s: str) -> None:
    hedge = _UNDECIDED.search(s)
    if hedge:
        raise _Undecided(f"the answer is undecided ({hedge.group(0)!r}): {s.strip()[:80]!r}")


def _items_from(segment: str) -> list[str]:
    """Split an answer segment into raw items; [] for a 'none' answer."""
    s = segment.strip().strip("*_` \t")
    leads = list(_LEAD_IN.finditer(s))
    if leads:
        s = s[leads[-1].end() :].strip().strip("*_` \t")
    s = _without_parentheticals(s)
    if "[" in s:
        start = s.index("[")
        end = s.find("]", start)
        inner = s[start + 1 : end if end != -1 else len(s)]
        _check_decided(inner)
        try:
            loaded = json.loads(f"[{inner}]")
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, list) and all(isinstance(x, str) for x in loaded):
            return loaded
        return [x for x in _SPLIT.split(inner) if x.strip()]
    if _NONE_ANSWER.match(s.strip("\"'` ")):
        if _EXCEPTIONS.search(_SENTENCE_END.split(s, maxsplit=1)[0]):  # "none except the dog"
            raise _Unreadable(f"{segment.strip()!r} says nothing sounds, with an exception")
        return []
    # "1) dog 2) cat": numbered items on one line; a sentence split would cut at "1." first.
    if len(_ENUMERATOR.findall(s)) >= 2 or _ENUMERATOR.match(s):
        pieces = [p for p in _ENUMERATOR.split(s.split("\n", 1)[0]) if p.strip(" ,;")]
        _check_decided(" ".join(pieces))
        return [x for p in pieces for x in _SPLIT.split(p) if x.strip(" ,;")]
    if re.match(r"[-*\u2022]\s", s):  # "Sounding objects: - dog - cat": bullets run into one line
        pieces = re.split(r"(?:^|\s)[-*\u2022]\s", s.split("\n", 1)[0])
        return [x for p in pieces for x in _SPLIT.split(p) if x.strip(" ,;")]
    first = _SENTENCE_END.split(s, maxsplit=1)[0]
    _check_decided(first)
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
    silent: list[str] = []
    for item in items:
        if cues and _RELATIVE.match(item):  # "the dogs, which are barking, and the children"
            continue
        if _SILENT_ITEM.search(item):
            silent.append(item)
            continue
        try:
            cue = _read_cue(item)
        except _Undecided:
            raise
        except _Unreadable:
            if cues:  # "dog, man, since both are active": the rest explains the answer
                break
            raise
        if cue is not None and cue not in cues:
            cues.append(cue)
    if silent and not cues:
        raise _Unreadable(f"{silent[0].strip()!r} says what is silent, not what sounds")
    return cues[:max_cues]


def _after_header(text: str, pos: int) -> str | list[str] | None:
    """What follows a header ending its line at pos: a bulleted list, else the next non-empty line."""
    bullets = _bullets_after(text, pos)
    if bullets:
        return bullets
    following = [line for line in text[pos:].splitlines()[1:] if line.strip()]
    return following[0] if following else None


def _last_line_answer(text: str, line: re.Pattern, header: re.Pattern) -> str | list[str] | None:
    """What follows the last label (`Answer: ...` or a header line over a list), or None."""
    found = [(m.start(), m.group(1).strip("*_ \t"), m.end()) for m in line.finditer(text)]
    found += [(m.start(), "", m.end()) for m in header.finditer(text)]
    if not found:
        return None
    _, rest, end = max(found)
    return rest if rest else _after_header(text, end)


# ---------------------------------------------------------------------------------------------
# Statements in running text (format 5).


@dataclass(frozen=True)
class _Statement:
    sentence: int  # index of the sentence it is in: later sentences are tried first
    rank: int  # within a sentence: 2 sounding-objects statement, 1 making-sound clause, 0 none
    source: str
    found: str | list[str] | None  # a segment or raw items; None for 'nothing sounds'


def _sentence_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _SENTENCE_BOUNDARY.finditer(text)]


def _subject_before(text: str, pos: int, starts: list[int], floor: int = 0) -> str:
    """The subject of the verb at pos: from the start of its clause ("..., so the ambulance"), and
    not before floor (the end of an earlier clause of the same sentence)."""
    start = max(starts[bisect.bisect_right(starts, pos) - 1], floor)
    clause = text[start:pos]
    cuts = list(_CLAUSE_START.finditer(clause))
    clause = clause[cuts[-1].end() :] if cuts else clause
    return re.sub(r"^[\s,]*(?:and|or|while|whereas)\b", "", clause, flags=re.IGNORECASE)


def _subject_items(subject: str) -> list[str]:
    """Raw items of a subject; an opener before a comma ("In the frame, the dog") is left out."""
    subject = re.sub(r",\s*(?:who|which|whose)\b[^,]*,", " ", subject)  # "The dog, which is barking loudly,"
    subject = re.sub(r"^\W*(?:yes|yeah|well|okay|ok|indeed|clearly|so|now)\b[,\s]*", "", subject.strip(), flags=re.I)
    subject = subject.strip(" ,\t")
    if _NEGATED.search(subject):
        raise _Unreadable(f"{subject!r} is negated or a question, not a source")
    items = [x for x in _SPLIT.split(_without_parentheticals(subject)) if x.strip()]
    if not items:
        raise _Unreadable("no subject before the verb")
    try:
        [_read_cue(x) for x in items]
        return items
    except _Unreadable:
        if "," not in subject:
            raise
        return [x for x in _SPLIT.split(subject.rsplit(",", 1)[1]) if x.strip()]


def _rest_of_statement(text: str, end: int) -> str | list[str] | None:
    """The list a statement introduces: the rest of its line, or the list below it."""
    rest = text[end:].split("\n", 1)[0]
    if rest.strip():
        return rest
    bullets = _bullets_after(text, end - 1)
    return bullets or None


def _statements(text: str) -> list[_Statement]:
    starts = _sentence_starts(text)

    def sentence(pos: int) -> int:
        return bisect.bisect_right(starts, pos) - 1

    def sentence_text(pos: int) -> str:
        k = sentence(pos)
        return text[starts[k] : starts[k + 1] if k + 1 < len(starts) else len(text)]

    out: list[_Statement] = []
    for m in _LEAD_IN.finditer(text):
        out.append(_Statement(sentence(m.start()), 2, "sounding-objects statement", _rest_of_statement(text, m.end())))
    for m in _IS_THE_SOURCE.finditer(text):
        out.append(_Statement(sentence(m.start()), 2, "'X is the sounding object'", ("subject", m.start())))
    for m in _SOUND_FROM.finditer(text):
        if re.search(r"\b(?:no|not|any)\s*$", text[max(0, m.start() - 6) : m.start()], re.IGNORECASE):
            continue  # "no sound comes from the TV"
        out.append(_Statement(sentence(m.start()), 1, "'the sound comes from X'", _rest_of_statement(text, m.end())))
    # "The dog is making sound, and the cat is making sound too": one statement per sentence.
    clauses: dict[int, list[tuple[int, int]]] = {}
    for m in _MAKING_SOUND.finditer(text):
        if sentence_text(m.start()).rstrip().endswith("?"):
            continue  # a question the model asks itself
        clauses.setdefault(sentence(m.start()), []).append((m.start(), m.end()))
    for k, spans in clauses.items():
        out.append(_Statement(k, 1, "'X is making sound'", ("subjects", spans)))
    for m in _SOUND_EXCEPT.finditer(text):
        named = m.group("before") or m.group("after")
        out.append(_Statement(sentence(m.start()), 1, "'nothing but X makes sound'", named))
    for m in _NONE_STATEMENT.finditer(text):
        said = sentence_text(m.start())
        if _EXCEPTIONS.search(said):  # "no object other than the flute", "nothing else": not a none
            continue
        if _SOUND_EXCEPT.search(said):
            continue
        out.append(_Statement(sentence(m.start()), 0, "'nothing is making sound'", None))
    # Later sentences first; within a sentence the more explicit statement first.
    out.sort(key=lambda s: (s.sentence, s.rank), reverse=True)
    resolved = []
    for s in out:
        if isinstance(s.found, tuple):
            kind, spans = s.found
            spans = spans if kind == "subjects" else [(spans, spans)]
            found: list[str] | _Unreadable = []
            floor = 0
            try:
                for start, end in spans:
                    found += _subject_items(_subject_before(text, start, starts, floor))
                    floor = end
            except _Unreadable as exc:  # a subject that hedges is only a clause that does not read
                found = _Unreadable(str(exc))
            resolved.append(_Statement(s.sentence, s.rank, s.source, found))
        else:
            resolved.append(s)
    return resolved


# ---------------------------------------------------------------------------------------------


def _candidates(text: str) -> Iterator[tuple[str, object]]:
    """(source, segment or raw items) for each place an answer may be, most trusted first."""
    answer = _last_line_answer(text, _ANSWER_LINE, _ANSWER_HEADER)
    if answer is not None or _ANSWER_LINE.search(text):
        yield "Answer line", answer
    inline = list(_INLINE_ANSWER.finditer(text))
    if inline:
        yield "inline answer", inline[-1].group(1)
    json_items = _json_items(text)
    if json_items is not None:
        yield "JSON", json_items
    label = _last_line_answer(text, _LABEL, _LABEL_HEADER)
    if label is not None or _LABEL.search(text):
        yield "sounding-objects label", label
    for statement in _statements(text):
        yield statement.source, statement.found


def _answer_in_json(value) -> list[str] | str | None:
    """The answer a JSON value holds: a list of strings, a string, or under an answer key."""
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            key = re.sub(r"[^a-z0-9]+", "_", str(key).lower()).strip("_")
            if _JSON_KEY.match(key) and (isinstance(item, str) or _answer_in_json(item) is not None):
                return item if isinstance(item, str) else _answer_in_json(item)
        for item in value.values():  # {"result": {"sounding_objects": [...]}}
            if isinstance(item, dict) and _answer_in_json(item) is not None:
                return _answer_in_json(item)
    return None


def _json_items(text: str) -> list[str] | str | None:
    """The answer in the last JSON object with an answer key, or the last JSON list of strings."""
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
        answer = _answer_in_json(value)
        if answer is not None:
            found = answer
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
    try:
        for source, found in _candidates(text):
            if isinstance(found, _Unreadable):
                problems.append(f"{source}: {found}")
                continue
            if found is None and source == "'nothing is making sound'":
                return ParsedCues([])
            if found is None:
                problems.append(f"{source}: nothing after it")
                continue
            try:
                items = _items_from(found) if isinstance(found, str) else found
                return ParsedCues(_normalize_all(items, max_cues))
            except _Undecided:
                raise
            except _Unreadable as exc:
                problems.append(f"{source}: {exc}")
    except _Undecided as exc:
        # The model said it does not know; another place in the text must not override that.
        return ParsedCues([], "error", str(exc))
    reason = "; ".join(problems) or "no answer found (no 'Answer:' line, JSON, sounding-objects label or statement)"
    return ParsedCues([], "error", reason)


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
