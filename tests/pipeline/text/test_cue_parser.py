"""The cue parser on hand-written answers in the style of LLaMA-2-chat, and on unreadable ones."""
import json

import pytest

from pipeline.text.cue_parser import CUES_JSON_SCHEMA, normalize_cue, parse_cues, parse_structured
from pipeline.text.noun_cues import wordnet_or_none

needs_wordnet = pytest.mark.skipif(
    wordnet_or_none() is None, reason="WordNet is not installed: run scripts/install_wordnet.sh .venv/nltk_data"
)

ANSWERS = [
    pytest.param(
        """  Sure, I'd be happy to help! Here's my reasoning:

Step 1: The objects in the description are a man, a guitar, a microphone, a stool, and a brick wall.
Step 2: The man can make sound (he can sing or talk), and the guitar is a musical instrument. The microphone, stool, and wall cannot make sound on their own.
Step 3: The man is singing while strumming the guitar, so both are sounding together.

Answer: [man, guitar]""",
        ["man", "guitar"],
        id="cot-bracket-list",
    ),
    pytest.param(
        """Step 1: Objects: sofa, coffee table, vase, flowers, lamp, window.
Step 2: None of these objects can make sound by themselves.
Step 3: There are no people or animals, so nothing is making sound.
Answer: []""",
        [],
        id="empty-brackets",
    ),
    pytest.param(
        "The dog is barking at the man, who is shouting back, while a car honks. So the answer is: Dog, Man and Car.",
        ["dog", "man", "car"],
        id="inline-answer-with-and",
    ),
    pytest.param(
        "Answer: dog, the man, and a car",
        ["dog", "man", "car"],
        id="answer-line-without-brackets-oxford-comma",
    ),
    pytest.param(
        """Sure! Let's think step by step.

1. The objects in the scene are two women, a sidewalk, a puppy, a pigeon and a bus.
2. The women can talk and laugh, the puppy can bark, and the bus makes engine noise.
3. All of them are active in this scene.

Answer: [Two women, a small brown puppy, the bus]

I hope this helps! Let me know if you have any other questions.""",
        ["woman", "puppy", "bus"],
        id="plurals-adjectives-and-chatter-after",
    ),
    pytest.param(
        """Based on the description provided, the sounding objects are:

1. The man (singing)
2. The acoustic guitar (being strummed)

The microphone does not produce sound on its own.""",
        ["man", "acoustic guitar"],
        id="numbered-list-under-header",
    ),
    pytest.param(
        """Here are the sounding objects in the scene:

* Dogs
* Children
* Birds""",
        ["dog", "child", "bird"],
        id="bullets-irregular-plurals",
    ),
    pytest.param(
        """In this scene, the girl is blowing into the flute, and the violin is lying on the table.
Since the violin is not being played, no object other than the flute is making sound.

Answer: flute.""",
        ["flute"],
        id="bare-word-trailing-period",
    ),
    pytest.param(
        """After analyzing the description, I can conclude that no object is making sound in this scene. The room is empty and all the furniture is silent.""",
        [],
        id="no-object-is-making-sound",
    ),
    pytest.param(
        """Step 1: The objects are a sofa, a lamp and a window.
Step 2: None of them can make sound.
Step 3: Nothing is sounding.

Answer: None""",
        [],
        id="answer-none",
    ),
    pytest.param(
        """Answer: There are no sounding objects in this scene.""",
        [],
        id="answer-there-are-no",
    ),
    pytest.param(
        """{"reasoning": "The dog is barking and the man is shouting at it.", "sounding_objects": ["dog", "man"]}""",
        ["dog", "man"],
        id="json-object",
    ),
    pytest.param(
        """Here is my answer in JSON format:

```json
["Piano", "Woman"]
```""",
        ["piano", "woman"],
        id="json-list-in-code-fence",
    ),
    pytest.param(
        """Answer: ["dog", 'cat', "the birds"]""",
        ["dog", "cat", "bird"],
        id="mixed-quotes",
    ),
    pytest.param(
        """**Answer:** [lawn mower]""",
        ["lawn mower"],
        id="markdown-bold-compound",
    ),
    pytest.param(
        """Step 3: The fire trucks have their sirens on and are driving through traffic.

Answer: [red fire trucks, siren, pedestrians]""",
        ["fire truck", "siren", "pedestrian"],
        id="compound-plural-with-colour",
    ),
    pytest.param(
        """answer: [MAN, guitar, Man, guitars, drum, piano]""",
        ["man", "guitar", "drum", "piano"],
        id="case-duplicates-and-max-cues",
    ),
    pytest.param(
        """Step 1: The objects are a man, a saxophone and a guitar.
Step 2: All three can make sound.
Step 3: He is singing, so he cannot be blowing the saxophone.
Answer: [man, guitar]
Note: the saxophone is on a stand, so it is silent.""",
        ["man", "guitar"],
        id="note-after-answer",
    ),
    pytest.param(
        """Answer: the man who is singing, and the guitar that he is playing""",
        ["man", "guitar"],
        id="relative-clauses",
    ),
    pytest.param(
        """Answer: a man playing the guitar""",
        ["man"],
        id="participle-clause",
    ),
    pytest.param(
        """Answer: a group of people and a flock of birds""",
        ["person", "bird"],
        id="collectives",
    ),
    pytest.param(
        """Answer: The sounding objects in this scene are the baby and the barking dog.""",
        ["baby", "dog"],
        id="answer-sentence-with-lead-in",
    ),
    pytest.param(
        """Answer:
- helicopter
- 2 men""",
        ["helicopter", "man"],
        id="bullets-after-answer",
    ),
    pytest.param(
        """Answer: the sound of a dog barking""",
        ["dog"],
        id="sound-of",
    ),
    pytest.param(
        """Sure! Here are the most likely sounding objects in the scene: the trumpet and the drums.""",
        ["trumpet", "drum"],
        id="inline-header",
    ),
    pytest.param(
        """Step 3: The man is talking on the phone while his baby cries.
Answer: [man, baby]

Example 7
Description: A cat sits on a windowsill, meowing at a bird outside.
Step 1: The objects are a cat, a windowsill and a bird.
Answer: [cat]""",
        ["man", "baby"],
        id="invented-example-after-the-answer",
    ),
    pytest.param(
        "The sounding objects in this scene are likely to be the man and the guitar, as he is strumming it.",
        ["man", "guitar"],
        id="likely-to-be",
    ),
    pytest.param(
        """Answer: [Dog (barking), Man (shouting at the dog)]""",
        ["dog", "man"],
        id="parenthetical-explanations",
    ),
]


@pytest.mark.parametrize("text, expected", ANSWERS)
def test_parse_realistic_answers(text, expected):
    parsed = parse_cues(text, max_cues=4)
    assert parsed.status == "ok", parsed.error
    assert parsed.error is None
    assert parsed.cues == expected


UNREADABLE = [
    pytest.param("", id="empty"),
    pytest.param("   \n\t ", id="whitespace"),
    pytest.param("asdkjh qwelkj zxcmnb", id="gibberish"),
    pytest.param("I'm sorry, but I cannot determine that from the description.", id="refusal-without-answer"),
    pytest.param("Answer: I cannot tell which object it is.", id="answer-is-a-sentence"),
    pytest.param("Answer: ???", id="answer-is-punctuation"),
    pytest.param("Answer: because it is quiet", id="answer-is-only-an-explanation"),
    pytest.param("The scene is lovely.\nAnswer:\n", id="answer-with-nothing-after"),
]


@pytest.mark.parametrize("text", UNREADABLE)
def test_unreadable_answers_are_errors_with_a_reason(text):
    parsed = parse_cues(text)
    assert parsed.status == "error"
    assert parsed.cues == []
    assert parsed.error


def test_max_cues_truncates_after_deduplication():
    parsed = parse_cues("Answer: [dog, dogs, cat, bird, cow]", max_cues=2)
    assert parsed.cues == ["dog", "cat"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_cues_is_refused(bad):
    with pytest.raises(ValueError, match="max_cues"):
        parse_cues("Answer: [dog]", max_cues=bad)


def test_non_string_input_is_refused():
    with pytest.raises(TypeError):
        parse_cues(None)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a brown dog", "dog"),
        ("two men", "man"),
        ("  'The Electric Guitars.' ", "electric guitar"),
        ("several barking dogs", "dog"),
        pytest.param("washing machine", "washing machine", marks=needs_wordnet),  # a compound, not a participle
        ("none", None),
    ],
)
def test_normalize_cue(raw, expected):
    assert normalize_cue(raw) == expected


def test_structured_output_uses_the_same_normalization():
    reply = json.dumps({"reasoning": "Both are active.", "sounding_objects": ["Two Dogs", "a man", "dog"]})
    assert parse_structured(reply).cues == ["dog", "man"]
    assert parse_structured('{"reasoning": "silent room", "sounding_objects": []}').cues == []


@pytest.mark.parametrize(
    "reply",
    ['{"reasoning": "x"}', '{"sounding_objects": "dog"}', "[1, 2]", "not json", '{"sounding_objects": [3]}'],
)
def test_structured_output_that_does_not_match_is_an_error(reply):
    parsed = parse_structured(reply)
    assert parsed.status == "error" and parsed.error and parsed.cues == []


def test_json_schema_asks_for_reasoning_then_objects():
    assert CUES_JSON_SCHEMA["type"] == "object"
    assert list(CUES_JSON_SCHEMA["properties"]) == ["reasoning", "sounding_objects"]
    assert CUES_JSON_SCHEMA["properties"]["sounding_objects"] == {"type": "array", "items": {"type": "string"}}
    assert set(CUES_JSON_SCHEMA["required"]) == {"reasoning", "sounding_objects"}


@pytest.fixture
def without_wordnet(monkeypatch):
    """The parser as on a machine without WordNet: rule-based singulars and modifiers."""
    import pipeline.text.cue_parser as cue_parser
    import pipeline.text.noun_cues as noun_cues

    def clear():
        noun_cues.singular.cache_clear()
        noun_cues.is_modifier.cache_clear()

    clear()
    monkeypatch.setattr(noun_cues, "wordnet_or_none", lambda: None)
    monkeypatch.setattr(cue_parser, "wordnet_or_none", lambda: None)
    yield
    clear()


def test_parser_works_without_wordnet(without_wordnet):
    parsed = parse_cues("Step 3: all sound.\nAnswer: [two brown dogs, babies, boxes, the men, a man singing]", 5)
    assert parsed.status == "ok"
    assert parsed.cues == ["dog", "baby", "box", "man"]
    assert parse_cues("Answer: barking puppies and red fire trucks").cues == ["puppy", "fire truck"]
