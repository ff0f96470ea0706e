"""The paper's noun-parser baseline (TeSO-n): text cues = the physical-object nouns of a caption.

The paper tags the caption with NLTK. NLTK's tokenizer and tagger data (punkt, perceptron tagger)
have no offline source here, but WordNet does (scripts/install_wordnet.sh lays it out from Debian's
packages), so a word is taken as an object noun when WordNet says it is: its noun lemma (morphy)
has, among its most frequent senses, one whose hypernyms pass through whole.n.02 (living things,
artifacts, natural objects); the word is not mostly an adjective ("white", "brown"); it is not
mostly a verb ("stands", "chases") unless a determiner or adjective comes before it ("a watch"); and
it is not a function word or a place-in-the-picture word ("side", "background"). WordNet's sense
counts (cntlist) stand in for the tagger's statistics. Two adjacent words that WordNet knows as one
noun ("electric guitar", "lawn mower") are kept together.

The lexical helpers here (singular, is_modifier, is_compound) are shared with pipeline.text.cue_parser;
each falls back to small rule sets where WordNet is not installed, and caches its answers per process.
"""
from __future__ import annotations

import functools
import os
import re
import threading
import warnings
from pathlib import Path

from pipeline.common.errors import UserError

REPO_NLTK_DATA = Path(__file__).resolve().parents[2] / ".venv" / "nltk_data"
INSTALL_HINT = "scripts/install_wordnet.sh .venv/nltk_data"

# How many of a lemma's noun senses (WordNet lists them most frequent first) may make it an object:
# "table" is first a data table and only second a piece of furniture.
_SENSES_CONSIDERED = 3
# A base-form word is read as a verb when WordNet's corpus uses it this many times more as one.
_VERB_DOMINANCE = 3
_DETERMINERS = frozenset(
    """a an the this that these those his her its their my your our some several many few each every
    another both no one two three four five six seven eight nine ten""".split()
)

# Closed-class words; some of them are WordNet nouns ("does" -> doe, "in" -> inch, "can", "will").
STOPWORDS = frozenset(
    """a an the this that these those there here it its it's he him his she her hers they them their theirs
    we us our you your i me my mine one ones some any each every all both either neither several many much
    few more most other another such what which who whom whose where when while why how
    is are was were be been being am do does did doing has have had having can could will would shall
    should may might must ought not no nor and or but so yet if then than too very also just only even
    of in on at by for with without from to into onto upon over under above below between among through
    across along around behind beside besides near off out up down about against toward towards within
    like as per via away back still quite rather almost perhaps maybe""".split()
)

# Nouns for a position, a part of the picture or the picture itself, never a sounding object
# ("feature" is nearly always the verb in "the image features ...").
NON_OBJECTS = frozenset(
    """side left right top bottom front back center centre middle corner edge background foreground
    distance surface space area part scene image picture photo photograph view frame video shot setting
    position atmosphere moment way kind type lot thing object item stuff feature""".split()
)

# Irregular plurals WordNet maps elsewhere ("men" is also a noun of its own: work force) or not at all.
_IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "people": "person", "persons": "person", "children": "child",
    "feet": "foot", "teeth": "tooth", "geese": "goose", "mice": "mouse", "oxen": "ox",
    "wolves": "wolf", "leaves": "leaf", "knives": "knife", "calves": "calf", "shelves": "shelf",
    "halves": "half", "wives": "wife", "lives": "life", "loaves": "loaf", "hooves": "hoof",
}  # fmt: skip

# Modifiers dropped from cue phrases even without WordNet: colours, sizes, ages, loudness.
_COMMON_MODIFIERS = frozenset(
    """black white brown red blue green yellow orange pink purple gray grey golden silver dark pale bright
    small little large big tiny huge giant tall short long young old elderly loud noisy quiet cute fluffy
    wooden beautiful""".split()
)

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


class WordNetMissingError(UserError, RuntimeError):
    """NLTK cannot find WordNet; scripts/install_wordnet.sh lays it out offline."""


def _search_paths() -> list[str]:
    """NLTK_DATA entries (also when set after nltk was imported), then the project's own folder."""
    paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    return [*paths, str(REPO_NLTK_DATA)]


def ensure_wordnet() -> None:
    """Make NLTK find WordNet, or raise WordNetMissingError saying how to install it."""
    _wordnet()


# NLTK's WordNet reader seeks and reads shared file handles: concurrent lookups from two threads
# (two cue shards on the thread task runner) read each other's lines and fail at random. Every
# public function that looks words up holds this lock (re-entrant: they call each other).
_WORDNET_LOCK = threading.RLock()


def _one_at_a_time(fn):
    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with _WORDNET_LOCK:
            return fn(*args, **kwargs)

    return locked


@functools.cache
def _wordnet():
    import nltk  # on first use only: config checks import this module, and nltk is slow to import

    for path in reversed(_search_paths()):
        if path not in nltk.data.path:
            nltk.data.path.insert(0, path)
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        raise WordNetMissingError(
            f"NLTK cannot find WordNet (looked in {', '.join(_search_paths())} and NLTK's defaults); "
            f"lay it out with `{INSTALL_HINT}` (or any DIR, then NLTK_DATA=DIR)"
        ) from None
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # Only Open Multilingual WordNet reads this map, and only English is used here. NLTK 3.10
            # builds it even onto the same WordNet (it compares the version "3.0" with "wordnet"):
            # 4.8 of the 8 s a load took, paid by every refresh that has new cues (bench/bench_scale.py).
            return None

    # NLTK warns that Open Multilingual WordNet is missing; only English is used here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return EnglishWordNet(nltk.data.find("corpora/wordnet"), None)
        except (OSError, LookupError, ValueError, AssertionError) as exc:
            raise WordNetMissingError(f"WordNet is there but unreadable ({exc}); rerun `{INSTALL_HINT}`") from exc


def wordnet_or_none():
    """NLTK's WordNet reader, or None where WordNet is not installed."""
    try:
        return _wordnet()
    except WordNetMissingError:
        return None


def _rule_singular(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _noun_count(wn, lemma: str) -> int:
    """How often WordNet's tagged corpus uses the lemma as a noun (cntlist)."""
    return sum(lem.count() for lem in wn.lemmas(lemma, wn.NOUN))


def _verb_count(wn, lemma: str) -> int:
    return sum(lem.count() for lem in wn.lemmas(lemma, wn.VERB))


def _adj_count(wn, word: str) -> int:
    # wn.lemmas(word, ADJ) leaves out satellite adjectives, so count through the synsets.
    return sum(lem.count() for s in wn.synsets(word, wn.ADJ) for lem in s.lemmas() if lem.name().lower() == word)


@functools.lru_cache(maxsize=65536)
@_one_at_a_time
def singular(word: str) -> str:
    """The singular of a (lower-case) noun: WordNet's morphy where it knows the word, else rules."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    wn = wordnet_or_none()
    lemma = wn.morphy(word, wn.NOUN) if wn is not None else None
    if lemma is None:
        return _rule_singular(word)
    if lemma == word and word.endswith("s"):
        # morphy keeps a plural that is also a lemma of its own ("cows" = cattle, "glasses");
        # the singular wins where it is the more frequent noun.
        rule = _rule_singular(word)
        if rule != word and wn.synsets(rule, wn.NOUN) and _noun_count(wn, rule) > _noun_count(wn, word):
            return rule
    return lemma


@functools.lru_cache(maxsize=65536)
@_one_at_a_time
def is_modifier(word: str) -> bool:
    """True for a word that qualifies a noun rather than naming one ("brown", "barking", "electric")."""
    if word in _COMMON_MODIFIERS:
        return True
    wn = wordnet_or_none()
    if wn is None:  # without WordNet a leading "-ing" word is taken for a participle ("barking dog")
        return word.endswith("ing") and len(word) >= 5
    adj_synsets = wn.synsets(word, wn.ADJ)  # includes satellites
    noun_synsets = wn.synsets(word, wn.NOUN)
    adj_count, noun_count = _adj_count(wn, word), _noun_count(wn, word)
    if adj_count > noun_count:
        return True
    if adj_count == noun_count == 0 and adj_synsets and len(adj_synsets) >= len(noun_synsets):
        return True
    # A participle before a noun ("barking dog"); "washing machine" is caught as a compound first.
    verb = wn.morphy(word, wn.VERB) if word.endswith(("ing", "ed")) else None
    return verb is not None and verb != word


@_one_at_a_time
def is_compound(words: list[str]) -> str | None:
    """The WordNet lemma of a multiword noun ("fire trucks" -> "fire_truck"), or None.

    A colour or size does not start one here: "black cat" and "old man" are WordNet nouns too, but in
    a caption they are a cat and a man."""
    wn = wordnet_or_none()
    if wn is None or len(words) < 2 or words[0] in _COMMON_MODIFIERS:
        return None
    lemma = wn.morphy("_".join(words), wn.NOUN)
    return lemma if lemma is not None and "_" in lemma else None


@functools.lru_cache(maxsize=65536)
def _is_object_lemma(lemma: str) -> bool:
    wn = _wordnet()
    whole = wn.synset("whole.n.02")
    for synset in wn.synsets(lemma, wn.NOUN)[:_SENSES_CONSIDERED]:
        ancestors = synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())
        if whole in ancestors:
            return True
    return False


def _after_determiner(prev: str | None) -> bool:
    """Whether the previous word makes the next one a noun ("a watch", "two ducks", "the brown bear")."""
    return prev is not None and (prev in _DETERMINERS or prev.isdigit() or is_modifier(prev))


def _object_lemma(word: str, prev: str | None) -> str | None:
    """The singular lemma of a word that names a physical object, else None; prev is the word before."""
    if word in STOPWORDS or word in NON_OBJECTS or word in _COMMON_MODIFIERS or len(word) < 2:
        return None
    lemma = singular(word)
    if lemma in NON_OBJECTS or lemma in STOPWORDS:
        return None
    wn = _wordnet()
    if not wn.synsets(lemma, wn.NOUN):
        return None
    # Mostly an adjective: "white" is also a noun (a white person), but a caption means the colour.
    if _adj_count(wn, word) > _noun_count(wn, word):
        return None
    # Mostly a verb ("a man stands", "a dog chases", "flashing") unless a determiner or an adjective
    # makes it a noun ("a watch", "two ducks"). Inflected forms lean to the verb sooner.
    verb = wn.morphy(word, wn.VERB)
    if verb is not None:
        inflected = lemma != word or word.endswith("ing")
        ratio = 1 if inflected else _VERB_DOMINANCE
        if _verb_count(wn, verb) > ratio * _noun_count(wn, lemma) and not _after_determiner(prev):
            return None
    return lemma if _is_object_lemma(lemma) else None


@_one_at_a_time
def noun_cues(caption: str, max_cues: int = 4) -> list[str]:
    """The first max_cues distinct physical-object nouns of a caption, singular, in caption order."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, not {type(caption).__name__}")
    if not isinstance(max_cues, int) or isinstance(max_cues, bool) or max_cues < 1:
        raise ValueError(f"max_cues must be a positive integer, got {max_cues!r}")
    ensure_wordnet()
    text = caption.lower().replace("\u2019", "'")
    matches = list(_WORD.finditer(text))
    cues: list[str] = []
    i = 0
    while i < len(matches) and len(cues) < max_cues:
        word = matches[i].group()
        found, step = None, 1
        # Two words separated only by spaces may be one noun ("lawn mower"); not across punctuation.
        if i + 1 < len(matches) and text[matches[i].end() : matches[i + 1].start()].isspace():
            compound = is_compound([word, matches[i + 1].group()])
            if compound is not None and _is_object_lemma(compound):
                found, step = compound, 2
        if found is None:
            found = _object_lemma(word, matches[i - 1].group() if i > 0 else None)
        if found is not None:
            cue = found.replace("_", " ")
            if cue not in cues:
                cues.append(cue)
        i += step
    return cues
