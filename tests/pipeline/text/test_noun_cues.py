"""The noun-parser baseline (TeSO-n) on LLaVA-style captions, with the real WordNet."""
import nltk
import pytest

import pipeline.text.noun_cues as noun_cues_module
from pipeline.text.noun_cues import WordNetMissingError, ensure_wordnet, noun_cues, wordnet_or_none

needs_wordnet = pytest.mark.skipif(
    wordnet_or_none() is None, reason="WordNet is not installed: run scripts/install_wordnet.sh .venv/nltk_data"
)

CAPTIONS = [
    (
        "The image shows a man playing an electric guitar on a stage, with a drum set behind him "
        "and a microphone stand in front of him.",
        ["man", "electric guitar", "stage", "drum", "microphone"],
    ),
    (
        "A small brown dog is barking at a cat sitting on a wooden fence in the backyard.",
        ["dog", "cat", "fence"],
    ),
    (
        "In the image, a woman is sitting at a grand piano in a large concert hall, and a violin rests "
        "on a chair to her left.",
        ["woman", "grand piano", "concert hall", "violin", "chair"],
    ),
    (
        "A red fire truck with flashing lights drives down a busy street while people walk on the sidewalk.",
        ["fire truck", "light", "street", "person", "sidewalk"],
    ),
    (
        "Two men are standing in a field next to a lawn mower, and a helicopter is flying in the sky above them.",
        ["man", "lawn mower", "helicopter"],
    ),
    (
        "A close-up view of a black cat with green eyes lying on a table in the center of the image.",
        ["cat", "table"],
    ),
    (
        "The image features a young girl playing the violin in a room. She is standing in front of a "
        "music stand, holding the violin's bow in her right hand.",
        ["girl", "violin", "room", "music stand", "bow", "hand"],
    ),
    (
        "Several birds are perched on the branches of a tree, and a car is parked on the side of the road.",
        ["bird", "branch", "tree", "car", "road"],
    ),
]


@needs_wordnet
@pytest.mark.parametrize("caption, expected", CAPTIONS)
def test_physical_object_nouns_in_caption_order(caption, expected):
    assert noun_cues(caption, max_cues=10) == expected


@needs_wordnet
def test_max_cues_keeps_the_first_distinct_nouns():
    caption = "A dog chases two dogs and a cat past a horse, a cow and a sheep."
    assert noun_cues(caption, max_cues=4) == ["dog", "cat", "horse", "cow"]
    assert noun_cues(caption) == ["dog", "cat", "horse", "cow"]  # the default is the paper's N_T = 4


@needs_wordnet
def test_no_objects_gives_an_empty_list():
    assert noun_cues("It is quiet and dark in the background of the scene.") == []
    assert noun_cues("") == []


@needs_wordnet
def test_compounds_are_not_joined_across_punctuation():
    assert noun_cues("A man stands by the lawn mower.") == ["man", "lawn mower"]
    assert noun_cues("A man stands by the lawn. Mower noise fills the air.") == ["man", "mower"]


@needs_wordnet
def test_verbs_and_colours_are_not_objects_unless_a_determiner_makes_them_nouns():
    assert noun_cues("A man stands and watches while a dog chases a white ball.") == ["man", "dog", "ball"]
    assert noun_cues("A brown bear looks at a watch.") == ["bear", "watch"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_cues"):
        noun_cues("a dog", max_cues=0)
    with pytest.raises(TypeError):
        noun_cues(None)


@pytest.fixture
def fresh_lookup():
    noun_cues_module._wordnet.cache_clear()
    yield
    noun_cues_module._wordnet.cache_clear()


def test_missing_wordnet_names_the_install_script(fresh_lookup, monkeypatch, tmp_path):
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(noun_cues_module, "REPO_NLTK_DATA", tmp_path / "also-nowhere")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    with pytest.raises(WordNetMissingError, match="scripts/install_wordnet.sh"):
        ensure_wordnet()
    assert wordnet_or_none() is None


def test_project_folder_is_searched_without_nltk_data(fresh_lookup, monkeypatch, tmp_path):
    if not (noun_cues_module.REPO_NLTK_DATA / "corpora" / "wordnet").is_dir():
        pytest.skip("WordNet is not in .venv/nltk_data: run scripts/install_wordnet.sh .venv/nltk_data")
    monkeypatch.delenv("NLTK_DATA", raising=False)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    ensure_wordnet()
    assert str(noun_cues_module.REPO_NLTK_DATA) in nltk.data.path
