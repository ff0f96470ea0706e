import sys

import pytest
from PIL import Image

from pipeline.captioner import HFLlavaCaptioner, build_captioner, build_vllm_caption_requests
from pipeline.generation import clean_output, llava_prompt, vllm_sampling_kwargs
from pipeline.reference_captions import ReferenceCaptioner
from tests.fixtures.tiny_models import make_tiny_llava


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    return make_tiny_llava(tmp_path_factory.mktemp("llava"))


def images(n):
    return [Image.new("RGB", (40 + 3 * i, 30), (40 * i, 90, 200 - 30 * i)) for i in range(n)]


def test_hf_batched_equals_one_at_a_time(tiny_llava):
    batched = HFLlavaCaptioner(tiny_llava, "Describe this picture in detail", device="cpu", max_new_tokens=6, batch_size=3)
    single = HFLlavaCaptioner(tiny_llava, "Describe this picture in detail", device="cpu", max_new_tokens=6, batch_size=1)
    a, b = batched.caption(images(3)), single.caption(images(3))
    assert [r.status for r in a] == ["ok"] * 3
    assert all(0 < r.n_tokens <= 6 for r in a)
    assert [r.text for r in a] == [r.text for r in b]  # left padding must not change greedy output


def test_a_bad_image_is_an_error_row_not_a_crash(tiny_llava):
    cap = build_captioner("hf", model=tiny_llava, instruction="Describe this picture", device="cpu", max_new_tokens=3)
    out = cap.caption([images(1)[0], None, images(2)[1]])
    assert [r.status for r in out] == ["ok", "error", "ok"] and "not an image" in out[1].error


def test_reference_captioner(tmp_path):
    (tmp_path / "scene_descriptions.jsonl").write_text(
        '{"label": "v1s", "uid": "u", "frame": 0, "description": "A dog barks."}\nnot json\n'
    )
    cap = ReferenceCaptioner(tmp_path)
    ok, missing = cap.caption([None, None], [{"label": "v1s", "uid": "u", "frame": 0}, {"label": "v1s", "uid": "u", "frame": 1}])
    assert ok.text == "A dog barks." and ok.status == "ok"
    assert missing.status == "error" and "1 unreadable lines" in missing.error
    with pytest.raises(FileNotFoundError, match="scene descriptions"):
        ReferenceCaptioner(tmp_path / "absent")


def test_vllm_requests_are_built_without_vllm():
    imgs = images(2)
    reqs = build_vllm_caption_requests(imgs, "Describe this picture")
    assert reqs[0]["prompt"] == "USER: <image>\nDescribe this picture\nASSISTANT:"
    assert reqs[1]["multi_modal_data"]["image"] is imgs[1]
    assert vllm_sampling_kwargs(32) == {"max_tokens": 32, "temperature": 0.0}
    assert "vllm" not in sys.modules


def test_prompt_and_clean_up():
    assert llava_prompt("  Describe  ") == "USER: <image>\nDescribe\nASSISTANT:"
    assert clean_output("ASSISTANT:  A dog\n\n barks. ") == "A dog barks."
    with pytest.raises(ValueError, match="unknown captioning backend"):
        build_captioner("gpt")
