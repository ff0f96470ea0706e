"""Prompt templates: the shipped files, rendering, fingerprints, and the few-shot demonstrations."""
import re

import pytest

from pipeline.text.cue_parser import parse_cues
from pipeline.text.prompts import PLACEHOLDER, list_templates, load_template

CUE_TEMPLATES = [
    "cot_fewshot",
    "cot_oneshot",
    "cot_zeroshot",
    "direct_fewshot",
    "direct_oneshot",
    "direct_zeroshot",
    "mislead_single",
    "mislead_any",
    "mislead_background",
    "irrelevant_random",
]
CAPTION = "A man is singing while playing a guitar on a stage."


def demonstrations(text: str) -> list[str]:
    """The worked examples of a template: the paragraphs that start with 'Example'."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip().startswith("Example")]


def test_every_variant_the_paper_ablates_is_shipped():
    assert set(list_templates()) == {"caption_paper", "caption_dense", *CUE_TEMPLATES}


@pytest.mark.parametrize("name", CUE_TEMPLATES)
def test_cue_templates_render_the_caption_and_ask_for_the_answer_line(name):
    tpl = load_template(name)
    assert tpl.name == name
    assert tpl.text.count(PLACEHOLDER) == 1
    assert tpl.system
    assert "Answer: [" in tpl.text and "Answer: []" in tpl.text
    rendered = tpl.render(f"  {CAPTION}\n")
    assert PLACEHOLDER not in rendered
    assert f"Description: {CAPTION}" in rendered
    assert re.fullmatch(r"[0-9a-f]{64}", tpl.sha256)


def test_variant_wording():
    assert "Let's think step by step" in load_template("cot_zeroshot").text
    assert "Tell me the sounding objects" in load_template("direct_zeroshot").text
    assert "single object that is most likely" in load_template("mislead_single").text
    assert "any objects in the scene" in load_template("mislead_any").text
    assert "background" in load_template("mislead_background").text
    assert "any random object" in load_template("irrelevant_random").text
    # The misleading and irrelevant variants must not hear about sounding objects from the system message.
    for name in ("mislead_single", "mislead_any", "mislead_background", "irrelevant_random"):
        assert "sound" not in load_template(name).system


def test_caption_instruction_asks_for_a_dense_description_and_takes_no_caption():
    tpl = load_template("caption_dense")
    assert PLACEHOLDER not in tpl.text
    for word in ("detail", "every object", "where", "doing"):
        assert word in tpl.text
    with pytest.raises(ValueError, match="no \\{caption\\} placeholder"):
        tpl.render(CAPTION)


def test_fewshot_cot_demonstrations_walk_the_three_steps_and_end_in_a_parsable_answer():
    demos = demonstrations(load_template("cot_fewshot").text)
    assert len(demos) >= 5
    answers = []
    for demo in demos:
        lines = demo.splitlines()
        assert lines[1].startswith("Description: ")
        assert [line.split(":")[0] for line in lines[2:5]] == ["Step 1", "Step 2", "Step 3"]
        assert re.fullmatch(r"Answer: \[[a-z ,]*\]", lines[-1])
        parsed = parse_cues(demo)
        assert parsed.status == "ok"
        answers.append(parsed.cues)
    # The cases the demonstrations must span: nothing, one source, several together.
    assert [] in answers
    assert any(len(a) == 1 for a in answers)
    assert any(len(a) >= 2 for a in answers)
    text = load_template("cot_fewshot").text
    assert "silent" in text  # an object present but silent
    assert "flute" in text and "violin" in text  # two instruments, only one fits the action


def test_oneshot_and_direct_variants_reuse_the_fewshot_demonstrations():
    cot = demonstrations(load_template("cot_fewshot").text)
    cot_by_description = {d.splitlines()[1]: d for d in cot}
    assert len(demonstrations(load_template("cot_oneshot").text)) == 1
    assert len(demonstrations(load_template("direct_oneshot").text)) == 1
    direct = demonstrations(load_template("direct_fewshot").text)
    assert len(direct) == len(cot)
    for demo in direct + demonstrations(load_template("direct_oneshot").text):
        lines = demo.splitlines()
        assert len(lines) == 3  # no reasoning in the direct variants
        assert cot_by_description[lines[1]].splitlines()[-1] == lines[2]
    for demo in demonstrations(load_template("cot_oneshot").text):
        lines = demo.splitlines()
        assert lines[1:] == cot_by_description[lines[1]].splitlines()[1:]


def test_empty_caption_is_refused():
    with pytest.raises(ValueError, match="empty"):
        load_template("cot_fewshot").render("  ")


def test_unknown_name_lists_the_available_templates():
    with pytest.raises(ValueError, match="available: .*cot_fewshot"):
        load_template("cot_fiveshot")


@pytest.mark.parametrize("bad", ["", "../prompts/cot_fewshot", "cot_fewshot.txt", "cot_fewshot.system"])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError):
        load_template(bad)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_templates(tmp_path / "nope")


def test_sha256_follows_the_text_and_the_system_message(tmp_path):
    (tmp_path / "t.txt").write_text("Describe: {caption}\n")
    first = load_template("t", prompts_dir=tmp_path)
    assert first.system == ""
    assert list_templates(tmp_path) == ["t"]

    (tmp_path / "t.txt").write_text("Describe: {caption}\n\n")  # whitespace at the ends does not count
    assert load_template("t", prompts_dir=tmp_path).sha256 == first.sha256

    (tmp_path / "t.txt").write_text("Describe briefly: {caption}\n")
    changed_text = load_template("t", prompts_dir=tmp_path)
    assert changed_text.sha256 != first.sha256

    (tmp_path / "t.system.txt").write_text("Be brief.\n")
    with_system = load_template("t", prompts_dir=tmp_path)
    assert with_system.system == "Be brief."
    assert with_system.sha256 != changed_text.sha256
    assert list_templates(tmp_path) == ["t"]  # a system file is not a template of its own

    (tmp_path / "t.system.txt").write_text("Be very brief.\n")
    assert load_template("t", prompts_dir=tmp_path).sha256 != with_system.sha256


def test_braces_in_a_template_survive_rendering(tmp_path):
    (tmp_path / "j.txt").write_text('Reply as {"sounding_objects": [...]}.\nDescription: {caption}')
    assert load_template("j", prompts_dir=tmp_path).render("a dog") == (
        'Reply as {"sounding_objects": [...]}.\nDescription: a dog'
    )


def test_empty_template_is_refused(tmp_path):
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_template("e", prompts_dir=tmp_path)
