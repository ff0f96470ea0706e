"""A rule-based stand-in for LLaMA-2's few-shot chain-of-thought cue reasoning (backend `cot_rules`).

On machines without LLM weights the paper's reasoning step (an LLM reads a frame caption and says
which described objects are *potentially sounding*) cannot run, and the `nouns` baseline (TeSO-n)
names every visible object, which says nothing about which one sounds. `RuleCoTReasoner` writes,
for each caption, an answer in the style of prompts/cot_fewshot.txt ("Step 1: ... Step 2: ...
Step 3: ... Answer: [a, b]"); the cues come out of pipeline.text.cue_parser like an LLM's. The
few-shot template the LLM backends render is not read: the rules are the "model".

What it reads, for any English caption (nothing here knows the synthetic dataset's classes):

- Step 1, the objects: the caption's object nouns as pipeline.text.noun_cues finds them, less
  parts ("its mouth", "strings", "keys"), noun adjuncts ("bronze" in "a bronze bell") and what
  the caption says is not there ("no people", "without a bow").
- Step 2, can it sound at all: a small table (alarm, siren, radio, microphone: no, ...) and else
  the WordNet hypernyms of the noun's most frequent sense: people, animals (not fish or most
  invertebrates), musical instruments, bells / horns / phones (acoustic devices), vehicles,
  machines and electronics.
- Step 3, what it is doing: each sentence is split into clauses ("while", "whereas", "but", "and a
  ..."); a lexicon of sound-producing actions and states (open mouth or beak, barking, singing,
  crying, being played / strummed / hit / bowed, ringing, swinging, headlights or engine on,
  honking, driving, ...) and of silence (mouth or beak closed, calm, quiet, asleep, still,
  untouched, without a bow, no drumsticks, off, parked, an instrument lying or resting, ...), each
  cue for the kinds of object it can describe, is matched in the clause and credited to the
  nearest such object (before it, else after it: "playing a violin"). A negation just before a
  sound cue ("not barking", "no one is playing") makes it a silence cue; a negated silence cue
  counts for nothing. Strong cues weigh 2, weak ones 1 ("parked", "lies", "pushing" a mower): the
  sign of the sum is the object's evidence. A clause that names no such object ("..., as if
  barking", "She is singing.") belongs to the clause before it.

Then it decides like a noisy LLM (the rates are `CoTRates`' defaults):

(a) a sound-capable object with no evidence either way is often named anyway (`unevidenced`
    0.35: LLMs list what *can* sound);
(b) an object with silence evidence is named anyway, its silence cue overlooked (`overlook_silence`
    0.15);
(c) an object with sound evidence is left out (`miss_evidence` 0.1);
(d) an agent or extra object the caption does not name is added after a named object with sound
    evidence ("musician" / "person" / "guitarist" for a played instrument, "owner" for an animal,
    "driver" for a car, "mother" for a baby: `hallucinate` 0.08 per such object); it never names
    an object of the caption;
(e) a named object is called by another noun ("puppy" for dog, "automobile" for car, "fiddle" for
    violin; a table, else a WordNet synonym: `paraphrase` 0.05).

The Answer lists objects by confidence: sound evidence first (strongest first), then the
unevidenced, then overlooked silences, then the added agents; at most `max_answer` (5) items, and
the backend's cues.max_cues is applied by the parser. The text of Step 3 agrees with the answer
(the mistakes are in the reasoning, as an LLM's are). Every random choice is a SHA-256 of the
caption, the object and the kind of choice: the same caption always gets the same answer,
whatever the batch, process or PYTHONHASHSEED, like greedy decoding (sets and dicts only hold
what is decided, they never order it).

Measured on the synthetic demo data (tests/pipeline/text/test_rule_reasoner.py: the 300 frames of
15 + 15 + 15 train videos of v1s / v1m / v2 planned with SynthConfig(seed=0, state_if_sounding=0.6,
state_if_silent=0.35), cues through the parser with max_cues=4, exact class-name match against
the frame's sounding classes; half of the visible objects sound):

    backend                    precision  recall  cues  false (not a visible object)  missed
    cot_rules                  0.53       0.61    324   152 (35)                      111 of 283
    cot_rules without mistakes 0.65       0.60    262    92 (0)                       113
    nouns                      0.28       0.86    876   632 (406: room, key, string)   39

A sounding object is named in 61% of the frames, a silent one in 42% (nouns: 86% and 82%; their
recall is under 1 because max_cues cuts the list). The caption's state phrase is itself a noisy
witness there (drawn on 60% of sounding and 35% of silent objects), so no reader of these
captions does much better than the mistake-free row.

`n_tokens` is None: there is no tokenizer, and a made-up count would mislead token statistics.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pipeline.text import noun_cues
from pipeline.text.results import ReasonerResult


@dataclass(frozen=True)
class CoTRates:
    """How often the stand-in makes each kind of mistake an LLM makes (see the module docstring)."""

    unevidenced: float = 0.35  # (a) a sound-capable object with no evidence is named anyway
    overlook_silence: float = 0.15  # (b) an object with silence evidence is named anyway
    miss_evidence: float = 0.1  # (c) an object with sound evidence is left out
    hallucinate: float = 0.08  # (d) an agent is added after a named object with sound evidence
    paraphrase: float = 0.05  # (e) a named object is called by another noun
    max_answer: int = 5  # items in the Answer list at most


DEFAULT_RATES = CoTRates()

# -- kinds of sound-capable object --------------------------------------------------------------
PERSON, ANIMAL, INSTRUMENT, RINGER, VEHICLE, MACHINE, WATER = (
    "person", "animal", "instrument", "ringer", "vehicle", "machine", "water")
VOICE = frozenset({PERSON, ANIMAL})
ANY = frozenset({PERSON, ANIMAL, INSTRUMENT, RINGER, VEHICLE, MACHINE, WATER})

# WordNet roots of each kind, tried in this order on the noun's most frequent sense (a fire truck
# is a vehicle before it is a machine; a bell is an acoustic device, a chime an instrument).
_ROOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (VEHICLE, ("self-propelled_vehicle.n.01", "aircraft.n.01", "public_transport.n.01", "vessel.n.02")),
    (INSTRUMENT, ("musical_instrument.n.01",)),
    (RINGER, ("acoustic_device.n.01", "noisemaker.n.01", "telephone.n.01")),
    (MACHINE, ("machine.n.01", "home_appliance.n.01", "power_tool.n.01", "electronic_equipment.n.01",
               "electro-acoustic_transducer.n.01")),
    (PERSON, ("person.n.01",)),
    (ANIMAL, ("animal.n.01",)),
)
_SILENT_ANIMALS = ("fish.n.01", "invertebrate.n.01")  # ... but insects buzz and chirp
_LOUD_INVERTEBRATES = ("insect.n.01",)

# What a language model knows without looking it up; None: cannot make sound by itself.
_KINDS: dict[str, str | None] = {
    "alarm": RINGER, "alarm clock": RINGER, "siren": RINGER, "whistle": RINGER, "doorbell": RINGER,
    "clock": RINGER, "phone": RINGER, "cellphone": RINGER, "smartphone": RINGER, "telephone": RINGER,
    "horn": RINGER, "radio": MACHINE, "television": MACHINE, "tv": MACHINE, "speaker": MACHINE,
    "loudspeaker": MACHINE, "stereo": MACHINE, "lawn mower": MACHINE, "mower": MACHINE,
    "vacuum": MACHINE, "vacuum cleaner": MACHINE, "blender": MACHINE, "drill": MACHINE,
    "chainsaw": MACHINE, "fan": MACHINE, "kettle": MACHINE, "engine": MACHINE, "motor": MACHINE,
    "waterfall": WATER, "fountain": WATER, "river": WATER, "stream": WATER, "wave": WATER,
    "sea": WATER, "ocean": WATER, "faucet": WATER, "tap": WATER,
    "microphone": None, "mic": None, "computer": None, "laptop": None, "monitor": None,
    "bicycle": None, "bike": None, "fish": None, "statue": None, "doll": None, "toy": None,
}  # fmt: skip

# Parts of an object, never objects of their own in Step 1 ("with its mouth open", "still strings").
_PARTS = frozenset(
    """mouth beak face eye ear tail paw leg head hand arm finger foot string key headlight wheel wing fur
    feather tooth tongue nose lip hair body neck back side handle pedal""".split()
)
_POSSESSIVES = frozenset("its his her their my your our".split())
_ABSENT = frozenset({"no", "without"})

# Step 2's and Step 3's words for each kind.
_ANIMAL_VERBS = {
    "dog": ("bark", "barking"), "puppy": ("bark", "barking"), "cat": ("meow", "meowing"),
    "kitten": ("meow", "meowing"), "bird": ("chirp or sing", "chirping"), "cow": ("moo", "mooing"),
    "horse": ("neigh", "neighing"), "sheep": ("bleat", "bleating"), "goat": ("bleat", "bleating"),
    "pig": ("oink", "oinking"), "duck": ("quack", "quacking"), "lion": ("roar", "roaring"),
    "tiger": ("roar", "roaring"), "rooster": ("crow", "crowing"), "chicken": ("cluck", "clucking"),
    "frog": ("croak", "croaking"), "owl": ("hoot", "hooting"), "wolf": ("howl", "howling"),
    "bee": ("buzz", "buzzing"), "elephant": ("trumpet", "trumpeting"), "monkey": ("chatter", "chattering"),
}  # fmt: skip
_CRIERS = frozenset("baby infant toddler newborn".split())
_ACTIVITY = {PERSON: "making sound", INSTRUMENT: "sounding", RINGER: "ringing", VEHICLE: "making engine noise",
             MACHINE: "running", WATER: "flowing"}

# (e) other nouns for an object; else a single-word WordNet synonym of its first sense.
_PARAPHRASES = {
    "dog": ("puppy", "hound"), "cat": ("kitten", "kitty"), "bird": ("songbird", "sparrow"),
    "baby": ("infant", "toddler"), "car": ("automobile", "vehicle"), "guitar": ("instrument",),
    "piano": ("keyboard",), "violin": ("fiddle",), "drum": ("drum kit", "percussion"),
    "bell": ("chime",), "man": ("guy",), "woman": ("lady",), "girl": ("child",), "boy": ("kid",),
    "person": ("individual",), "truck": ("lorry",), "phone": ("cellphone",),
}  # fmt: skip

# (d) who or what an LLM adds that the caption does not name, by kind (and per noun).
_AGENTS = {INSTRUMENT: ("person", "musician", "player"), ANIMAL: ("owner", "person"),
           PERSON: ("friend", "person"), RINGER: ("person",), VEHICLE: ("driver", "engine"),
           MACHINE: ("operator", "person")}
_AGENTS_OF = {"guitar": ("guitarist",), "piano": ("pianist",), "violin": ("violinist",),
              "drum": ("drummer",), "bell": ("bell ringer",), "baby": ("mother", "parent"),
              "infant": ("mother", "parent")}


# -- the cue lexicon ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cue:
    pattern: re.Pattern
    sign: int  # +1 makes sound, -1 silent
    weight: int  # 2 strong, 1 weak
    kinds: frozenset[str]


def _cue(regex: str, sign: int, kinds, weight: int = 2) -> _Cue:
    return _Cue(re.compile(rf"\b(?:{regex})\b"), sign, weight, frozenset(kinds))


def _words(*stems: str) -> str:
    return "|".join(stems)


_CUES: tuple[_Cue, ...] = (
    # makes sound
    _cue(r"(?:mouth|beak|jaws?|muzzle)s?\s+(?:is\s+|are\s+)?(?:wide\s+)?open(?:ed)?|open(?:ed)?\s+(?:mouth|beak)s?",
         +1, VOICE),
    _cue(_words(r"bark(?:s|ing|ed)?", r"woof(?:ing)?", r"meow(?:s|ing|ed)?", r"mew(?:s|ing)?", r"purr(?:s|ing)?",
                r"hiss(?:es|ing)?", r"growl(?:s|ing)?", r"howl(?:s|ing)?", r"yelp(?:s|ing)?", r"whin(?:e|es|ing)",
                r"whimper(?:s|ing)?", r"chirp(?:s|ing)?", r"tweet(?:s|ing)?", r"twitter(?:s|ing)",
                r"sing(?:s|ing)?", r"sang", r"squawk(?:s|ing)?", r"caw(?:s|ing)?", r"coo(?:s|ing)?",
                r"cluck(?:s|ing)?", r"quack(?:s|ing)?", r"moo(?:s|ing)?", r"neigh(?:s|ing)?", r"bleat(?:s|ing)?",
                r"oink(?:s|ing)?", r"roar(?:s|ing)?", r"hoot(?:s|ing)?", r"croak(?:s|ing)?", r"cr(?:y|ies|ying|ied)",
                r"sob(?:s|bing)?", r"wail(?:s|ing)?", r"scream(?:s|ing)?", r"shout(?:s|ing)?", r"yell(?:s|ing)?",
                r"laugh(?:s|ing)?", r"giggl(?:e|es|ing)", r"talk(?:s|ing)?", r"speak(?:s|ing)?", r"chatting",
                r"cheer(?:s|ing)?", r"whistl(?:es|ing)", r"babbl(?:es|ing)", r"calling(?:\s+out)?"),
         +1, VOICE),
    _cue(_words(r"play(?:s|ing|ed)?", r"strum(?:s|med|ming)?", r"pluck(?:s|ed|ing)?", r"bow(?:ed|ing)",
                r"blow(?:s|ing|n)?\s+(?:into|on)", r"fingering"),
         +1, {INSTRUMENT, MACHINE}),
    _cue(_words(r"hit(?:s|ting)?", r"struck", r"strik(?:e|es|ing)", r"beat(?:s|en|ing)?", r"bang(?:s|ed|ing)?",
                r"tap(?:s|ped|ping)", r"drumm(?:ing|ed)", r"pound(?:s|ed|ing)?"),
         +1, {INSTRUMENT, RINGER}),
    _cue(_words(r"ring(?:s|ing)?", r"rang", r"chim(?:es|ing)", r"toll(?:s|ing)", r"clang(?:s|ing)?",
                r"jingl(?:es|ing)", r"swing(?:s|ing)?", r"swung", r"sway(?:s|ing)", r"going\s+off",
                r"beep(?:s|ing)?", r"sounding"),
         +1, {RINGER, MACHINE}),
    _cue(_words(r"honk(?:s|ing|ed)?", r"horns?\s+(?:blaring|honking|blowing)", r"sirens?",
                r"engines?\s+(?:is\s+|are\s+)?(?:running|on|revving|roaring|idling)", r"rev(?:s|ving)",
                r"(?:head)?lights?\s+(?:is\s+|are\s+)?(?:turned\s+|switched\s+)?on",
                r"(?:head)?lights?\s+(?:flashing|blinking)", r"flashing\s+(?:head)?lights?",
                r"driv(?:e|es|ing)", r"speed(?:s|ing)", r"rac(?:es|ing)", r"zoom(?:s|ing)",
                r"accelerat(?:es|ing)", r"moving", r"in\s+motion", r"passing\s+by"),
         +1, {VEHICLE}),
    _cue(_words(r"running", r"(?:turned|switched)\s+on", r"operating", r"whirr(?:s|ing)?", r"humming",
                r"spinning", r"blar(?:es|ing)", r"vibrating"),
         +1, {MACHINE, VEHICLE}),
    _cue(_words(r"push(?:es|ed|ing)", r"being\s+pushed", r"mow(?:s|ing)", r"cutting", r"drilling", r"sawing"),
         +1, {MACHINE}, weight=1),
    _cue(_words(r"flow(?:s|ing)", r"rush(?:es|ing)", r"crash(?:es|ing)", r"splash(?:es|ing)", r"pour(?:s|ing)",
                r"gush(?:es|ing)", r"cascad(?:es|ing)"),
         +1, {WATER}),
    _cue(_words(r"mak(?:es|ing)\s+(?:a\s+)?(?:loud\s+)?(?:sound|sounds|noise|noises|music)", r"loud(?:ly)?",
                r"noisy", r"noisily", r"buzz(?:es|ing)?"),
         +1, ANY),
    # silent
    _cue(r"(?:mouth|beak|jaws?)s?\s+(?:is\s+|are\s+)?(?:closed|shut)|(?:closed|shut)\s+(?:mouth|beak)s?", -1, VOICE),
    _cue(_words(r"asleep", r"sleep(?:s|ing)?", r"napping", r"naps", r"dozing", r"calm(?:ly)?", r"relaxed",
                r"peaceful(?:ly)?", r"expressionless"),
         -1, VOICE),
    _cue(r"resting|lying\s+down|lies\s+down", -1, VOICE, weight=1),
    _cue(_words(r"untouched", r"unplayed", r"unused", r"in\s+(?:its|a|the)\s+case",
                r"(?:without|no)\s+(?:a\s+|any\s+|its\s+|the\s+)?"
                r"(?:bow|drumsticks?|sticks?|mallets?|pick|player|musician|hands?)"),
         -1, {INSTRUMENT}),
    _cue(_words(r"lie", r"lies", r"lying", r"laid", r"rests", r"resting", r"leans", r"leaning", r"propped", r"placed"),
         -1, {INSTRUMENT}, weight=1),
    _cue(_words(r"(?:head)?lights?\s+(?:is\s+|are\s+)?(?:turned\s+|switched\s+)?off",
                r"engines?\s+(?:is\s+|are\s+)?off", r"stopped", r"stationary"),
         -1, {VEHICLE}),
    _cue(r"parked", -1, {VEHICLE}, weight=1),
    _cue(_words(r"(?:turned|switched)\s+off", r"unplugged", r"(?:is|are)\s+off"), -1, {MACHINE, VEHICLE}),
    _cue(r"frozen|calm|still\s+water", -1, {WATER}),
    _cue(_words(r"still(?!\s+(?:\w+ing|being)\b)", r"motionless", r"silent(?:ly)?", r"quiet(?:ly)?",
                r"not\s+moving", r"idle"),
         -1, ANY),
)

_NEGATORS = frozenset("not no never without nobody nothing neither nor isn't aren't doesn't don't wasn't".split())
_NEGATION_WINDOW = 3  # words before a sound cue that may negate it

# Clause boundaries inside a sentence: "..., while a cat sleeps", "... and a dog barks".
_SENTENCE_END = re.compile(r"[.!?;]+(?=\s|$)|\n+")
_CLAUSE_BREAK = re.compile(
    r",?\s+\b(?:while|whereas|but|meanwhile|although|though)\b\s*"
    r"|,?\s+\band\b\s+(?=(?:a|an|the|two|three|four|several|some|his|her|its|their|another|one|he|she|they|it)\b)")
_PRONOUN_START = re.compile(r"\s*(?:he|she|it|they|its|his|her|their)\b")


# -- deterministic chance -----------------------------------------------------------------------
def _chance(caption: str, purpose: str, key: str = "") -> float:
    """A number in [0, 1) fixed by the caption text, the kind of choice and the object."""
    digest = hashlib.sha256("\x1f".join((caption, purpose, key)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(options, caption: str, purpose: str, key: str):
    return options[int(_chance(caption, purpose, key) * len(options))]


# -- reading a caption ---------------------------------------------------------------------------
@dataclass
class _Mention:
    lemma: str
    start: int  # characters in the caption
    end: int
    first_tok: int  # word indices
    last_tok: int
    part: bool


@dataclass
class _Object:
    lemma: str
    kind: str | None
    score: int = 0
    positive: list[tuple[int, str]] = field(default_factory=list)  # (weight, quoted phrase)
    negative: list[tuple[int, str]] = field(default_factory=list)


# noun_cues looks every word up again (WordNet's sense counts are a file search each): a
# caption's few hundred distinct words are worth remembering. The answer depends only on
# whether the previous word makes the word a noun, so (word, previous word) is the key.
_object_lemma = functools.lru_cache(maxsize=65536)(noun_cues._object_lemma)


_AFTER_VERB = frozenset(
    """on in at near by under behind beside besides next there here still quietly alone against inside
    outside above below between among beneath across along around""".split()
)


def _verb_after_subject(text: str, words: list, i: int, before: list[_Mention]) -> bool:
    """Whether words[i] is a verb after its subject ("a piano with its keys being played stands on
    the left"), which noun_cues takes for a noun when an adjective-like word comes before it."""
    word = words[i].group()
    prev = words[i - 1].group() if i > 0 else None
    nxt = words[i + 1].group() if i + 1 < len(words) else None
    if not word.endswith("s") or prev is None or prev in noun_cues._DETERMINERS or prev.isdigit():
        return False
    if nxt is not None and nxt not in _AFTER_VERB:
        return False
    if not before or _SENTENCE_END.search(text, before[-1].end, words[i].start()):
        return False  # no subject before it in the sentence
    wn = noun_cues._wordnet()
    verb, noun = wn.morphy(word, wn.VERB), wn.morphy(word, wn.NOUN)
    return verb is not None and (noun is None or noun_cues._verb_count(wn, verb) > noun_cues._noun_count(wn, noun))


def _mentions(text: str) -> list[_Mention]:
    """noun_cues' object nouns with where they are; parts and noun adjuncts marked or dropped."""
    out: list[_Mention] = []
    with noun_cues._WORDNET_LOCK:
        words = list(noun_cues._WORD.finditer(text))
        i, absent_before = 0, False
        while i < len(words):
            word = words[i].group()
            found, step = None, 1
            if i + 1 < len(words) and text[words[i].end() : words[i + 1].start()].isspace():
                compound = noun_cues.is_compound([word, words[i + 1].group()])
                if compound is not None and noun_cues._is_object_lemma(compound):
                    found, step = compound, 2
            prev = words[i - 1].group() if i > 0 else None
            if found is None:
                found = _object_lemma(word, prev)
            if found is not None and step == 1 and _verb_after_subject(text, words, i, out):
                found = None
            if found is not None:
                lemma = found.replace("_", " ")
                # "no people or animals", "without a bow": not in the scene
                if prev in _ABSENT or (prev in ("or", "nor") and absent_before):
                    absent_before = True
                    i += step
                    continue
                absent_before = False
                after_apostrophe = prev == "s" and text[words[i - 1].start() - 1 : words[i - 1].start()] == "'"
                possessed = prev in _POSSESSIVES or after_apostrophe  # "its mouth", "the dog's mouth"
                out.append(_Mention(lemma, words[i].start(), words[i + step - 1].end(), i, i + step - 1,
                                    part=possessed or lemma in _PARTS))
            i += step
    # "a bronze bell", "a guitar case": a noun right before another one only qualifies it.
    kept = []
    for k, m in enumerate(out):
        nxt = out[k + 1] if k + 1 < len(out) else None
        if nxt is not None and nxt.first_tok == m.last_tok + 1 and text[m.end : nxt.start].isspace():
            continue
        kept.append(m)
    return kept


@functools.lru_cache(maxsize=65536)
def _kind(lemma: str) -> str | None:
    """The kind of sound an object can make (PERSON, ANIMAL, ...), or None: it cannot make sound.

    The table first, else WordNet's most frequent sense alone: the second senses are where a fence
    is a receiver of stolen goods and a poster someone who posts bills."""
    if lemma in _KINDS:
        return _KINDS[lemma]
    with noun_cues._WORDNET_LOCK:
        wn = noun_cues._wordnet()
        synsets = wn.synsets(lemma.replace(" ", "_"), wn.NOUN)
        if not synsets:
            # "toy guitar" is not a WordNet noun; its head word may be
            return _kind(lemma.split()[-1]) if " " in lemma else None
        above = set(synsets[0].closure(lambda s: s.hypernyms() + s.instance_hypernyms())) | {synsets[0]}
    names = {s.name() for s in above}
    for kind, roots in _ROOTS:
        if names.isdisjoint(roots):
            continue
        if kind == ANIMAL and not names.isdisjoint(_SILENT_ANIMALS) and names.isdisjoint(_LOUD_INVERTEBRATES):
            return None
        return kind
    return None


def _clauses(text: str, mentions: list[_Mention], capable: set[str]) -> list[tuple[int, int]]:
    """(start, end) of each clause; a clause naming no sound-capable object joins the one before it
    when it continues a sentence or starts with a pronoun ("..., as if barking", "She is singing")."""
    spans: list[tuple[int, int, bool]] = []  # (start, end, first of its sentence)
    pos = 0
    for end_match in [*_SENTENCE_END.finditer(text), None]:
        end = end_match.start() if end_match else len(text)
        first = True
        start = pos
        for brk in _CLAUSE_BREAK.finditer(text, pos, end):
            spans.append((start, brk.start(), first))
            start, first = brk.end(), False
        spans.append((start, end, first))
        pos = end_match.end() if end_match else len(text)
        if end_match is None:
            break
    merged: list[list[int]] = []
    for start, end, first in spans:
        names_one = any(start <= m.start < end and m.lemma in capable and not m.part for m in mentions)
        joins = not names_one and merged and (not first or _PRONOUN_START.match(text, start))
        if joins:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _negated(text: str, clause_start: int, cue_start: int, mentions: list[_Mention]) -> int | None:
    """Where a negation of the cue starts ("not barking", "no one is playing"), or None."""
    before = list(re.finditer(r"[a-z']+", text[clause_start:cue_start]))[-_NEGATION_WINDOW:]
    for w in reversed(before):
        if w.group() in _NEGATORS or w.group().endswith("n't"):
            neg_at = clause_start + w.start()
            # "a dog with no collar is barking": the negation is about the collar
            if any(neg_at < m.start < cue_start for m in mentions):
                return None
            return neg_at
    return None


def _read(caption: str) -> list[_Object]:
    """The caption's objects in order, each with its kind and evidence."""
    text = caption.lower().replace("\u2019", "'")
    mentions = _mentions(text)
    objects: dict[str, _Object] = {}
    for m in mentions:
        if not m.part and m.lemma not in objects:
            objects[m.lemma] = _Object(m.lemma, _kind(m.lemma))
    capable = {o.lemma for o in objects.values() if o.kind is not None}
    for c_start, c_end in _clauses(text, mentions, capable):
        here = [m for m in mentions if c_start <= m.start < c_end and not m.part and m.lemma in capable]
        if not here:
            continue
        for cue in _CUES:
            for hit in cue.pattern.finditer(text, c_start, c_end):
                fits = [m for m in here if objects[m.lemma].kind in cue.kinds]
                if not fits:
                    continue
                before = [m for m in fits if m.end <= hit.start()]
                after = [m for m in fits if m.start >= hit.end()]
                target = before[-1] if before else after[0] if after else fits[0]
                sign, start = cue.sign, hit.start()
                neg_at = _negated(text, c_start, hit.start(), mentions)
                if neg_at is not None:
                    if sign < 0:
                        continue  # "not asleep" does not say it makes sound
                    sign, start = -1, neg_at
                obj = objects[target.lemma]
                phrase = text[start : hit.end()]
                obj.score += sign * cue.weight
                (obj.positive if sign > 0 else obj.negative).append((cue.weight, phrase))
    return list(objects.values())


# -- writing the answer -------------------------------------------------------------------------
def _a(noun: str) -> str:
    vowel = noun[0] in "aeiou" and not noun.startswith(("uni", "use", "usu", "eu", "one", "once"))
    return ("an " if vowel or noun.startswith(("hour", "honest", "honour", "honor")) else "a ") + noun


def _listing(nouns: list[str]) -> str:
    items = [_a(n) for n in nouns]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _can(obj: _Object) -> str:
    """Step 2's sentence for one sound-capable object."""
    o, kind = obj.lemma, obj.kind
    if kind == ANIMAL:
        verb = _ANIMAL_VERBS.get(o, ("make noises",))[0]
        return f"{_a(o).capitalize()} can make sound: it can {verb}."
    if kind == PERSON:
        return f"{_a(o).capitalize()} can {'cry' if o in _CRIERS else 'talk or sing'}."
    if kind == INSTRUMENT:
        return f"{_a(o).capitalize()} makes sound when it is played."
    if kind == RINGER:
        how = "when it swings or is struck" if o.split()[-1] == "bell" else "when it rings or goes off"
        return f"{_a(o).capitalize()} makes sound {how}."
    if kind == VEHICLE:
        return f"{_a(o).capitalize()} makes engine noise when it runs."
    if kind == MACHINE:
        return f"{_a(o).capitalize()} makes noise when it is running."
    return f"{_a(o).capitalize()} makes the sound of moving water."


def _activity(obj: _Object) -> str:
    if obj.kind == ANIMAL:
        return _ANIMAL_VERBS.get(obj.lemma, ("", "making noise"))[1]
    if obj.kind == PERSON and obj.lemma in _CRIERS:
        return "crying"
    return _ACTIVITY[obj.kind]


def _it(obj: _Object) -> str:
    """How Step 3 refers back to an object: 'it', but not for a person."""
    return f"the {obj.lemma}" if obj.kind == PERSON else "it"


def _strongest(evidence: list[tuple[int, str]]) -> str:
    return max(evidence, key=lambda e: e[0])[1].strip()


def _paraphrase(obj: _Object, caption: str, taken: set[str]) -> str | None:
    options = list(_PARAPHRASES.get(obj.lemma, ()))
    if not options:
        with noun_cues._WORDNET_LOCK:
            wn = noun_cues._wordnet()
            synsets = wn.synsets(obj.lemma.replace(" ", "_"), wn.NOUN)[:1]
            options = [name.replace("_", " ") for s in synsets for name in s.lemma_names()
                       if name.lower() != obj.lemma.replace(" ", "_") and "_" not in name and name.islower()]
    options = [p for p in options if p not in taken]
    return _pick(options, caption, "paraphrase-choice", obj.lemma) if options else None


def _agent(obj: _Object, caption: str, taken: set[str]) -> str | None:
    options = [a for a in (*_AGENTS_OF.get(obj.lemma, ()), *_AGENTS.get(obj.kind, ())) if a not in taken]
    return _pick(options, caption, "agent-choice", obj.lemma) if options else None


def _agent_sentence(obj: _Object, agent: str) -> str:
    if obj.kind == INSTRUMENT:
        return f"Someone must be playing the {obj.lemma}, so {_a(agent)} is probably making sound as well."
    if agent == "engine":
        return f"The {obj.lemma}'s engine is probably running too."
    if agent in ("owner", "mother", "parent", "driver", "operator"):
        return f"The {obj.lemma}'s {agent} is probably nearby and may be talking."
    return f"{_a(agent).capitalize()} is probably near the {obj.lemma} and may be making sound too."


def cot_answer(caption: str, rates: CoTRates = DEFAULT_RATES) -> str:
    """The chain-of-thought answer for one caption, ending in an 'Answer: [...]' line."""
    if not isinstance(caption, str):
        raise TypeError(f"the caption is {type(caption).__name__}, not text")
    objects = _read(caption)
    if not objects:
        return ("Step 1: The description names no objects.\n"
                "Step 2: There is nothing that could make sound.\n"
                "Step 3: Nothing is described, so nothing is making sound.\n"
                "Answer: []")
    capable = [o for o in objects if o.kind is not None]
    silent = [o.lemma for o in objects if o.kind is None]
    step2 = [_can(o) for o in capable]
    if silent:
        step2.append(f"{_listing(silent).capitalize()} cannot make sound.")

    taken = {o.lemma for o in objects}
    step3: list[str] = []
    ranked: list[tuple[tuple, str]] = []  # ((group, -score, caption order), name)
    extras: list[tuple[_Object, str]] = []
    for order, obj in enumerate(capable):
        o, doing, it = obj.lemma, _activity(obj), _it(obj)
        named, group = False, 0
        if obj.score > 0:
            if _chance(caption, "miss", o) < rates.miss_evidence:  # (c)
                if _chance(caption, "miss-wording", o) < 0.5:
                    step3.append(f"Nothing shows that the {o} is {doing}, so {it} is probably silent.")
                else:
                    step3.append(f'For the {o}, the description says "{_strongest(obj.positive)}", '
                                 f"but that does not mean {it} is making sound, so {it} is probably silent.")
            else:
                named, group = True, 0
                step3.append(f'For the {o}, the description says "{_strongest(obj.positive)}", '
                             f"so {it} is probably {doing}.")
        elif obj.score < 0:
            if _chance(caption, "overlook", o) < rates.overlook_silence:  # (b)
                named, group = True, 2
                step3.append(f"The {o} can make sound, so {it} may be {doing} too.")
            else:
                step3.append(f'For the {o}, the description says "{_strongest(obj.negative)}", so {it} is silent.')
        else:
            if _chance(caption, "include", o) < rates.unevidenced:  # (a)
                named, group = True, 1
                step3.append(f"Nothing says what the {o} is doing, but {_a(o)} can make sound, "
                             f"so {it} could be {doing} as well.")
            else:
                step3.append(f"Nothing says that the {o} is {doing}, so {it} is probably silent.")
        if not named:
            continue
        name = o
        if _chance(caption, "paraphrase", o) < rates.paraphrase:  # (e)
            name = _paraphrase(obj, caption, taken) or o
            taken.add(name)
        ranked.append(((group, -obj.score, order), name))
        if group == 0 and _chance(caption, "hallucinate", o) < rates.hallucinate:  # (d)
            agent = _agent(obj, caption, taken)
            if agent is not None:
                taken.add(agent)
                extras.append((obj, agent))
    for obj, agent in extras:
        step3.append(_agent_sentence(obj, agent))
    if not capable:
        step3.append("There are no people, animals, instruments or machines that could be making sound, "
                     "so nothing is sounding.")
    answer = [name for _, name in sorted(ranked)] + [agent for _, agent in extras]
    return (f"Step 1: The objects are {_listing([o.lemma for o in objects])}.\n"
            f"Step 2: {' '.join(step2)}\n"
            f"Step 3: {' '.join(step3)}\n"
            f"Answer: [{', '.join(answer[: rates.max_answer])}]")


class RuleCoTReasoner:
    """The `cot_rules` cue backend's worker: `reason(template, captions)` like the LLM reasoners.

    The template is not read (the rules stand for the model prompted with it); a caption that is
    not text, or one the rules fail on, gives an error result for its row only."""

    def __init__(self, rates: CoTRates = DEFAULT_RATES):
        self.rates = rates
        noun_cues.ensure_wordnet()

    def reason(self, template, captions: list[str]) -> list[ReasonerResult]:
        results = []
        for i, caption in enumerate(captions):
            try:
                results.append(ReasonerResult(cot_answer(caption, self.rates), None, "ok"))
            except Exception as exc:  # one odd caption must not stop the batch
                results.append(ReasonerResult(None, None, "error", f"caption {i}: {type(exc).__name__}: {exc}"))
        return results
