import io
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from pipeline.config import ConfigError, load_config
from pipeline.text.backends import CAPTIONERS
from pipeline.text.captioners import (
    HFLlavaCaptioner,
    ReferenceCaptioner,
    VLLMCaptioner,
    build_vllm_caption_requests,
)
from pipeline.text.generation import (
    clean_caption,
    isolate_failures,
    llava_prompt,
    resolve_device,
    resolve_dtype,
    vllm_sampling_kwargs,
)
from pipeline.text.tiny_models import make_tiny_llava

INSTRUCTION = "Describe this picture in detail"


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    return make_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def captioner(tiny_llava):
    return HFLlavaCaptioner(tiny_llava, instruction=INSTRUCTION, device="cpu", max_new_tokens=8, batch_size=8)


def noise_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (30 + 7 * i, 45, 3), dtype=np.uint8)) for i in range(n)]


def keys(n):
    return [{"label": "v1s", "uid": "u", "frame": i} for i in range(n)]


def test_hf_batch_matches_one_at_a_time(tiny_llava, captioner):
    images = noise_images(3)
    batched = captioner.caption(images, keys(3))
    single = HFLlavaCaptioner(tiny_llava, instruction=INSTRUCTION, device="cpu", max_new_tokens=8, batch_size=1).caption(images)
    assert [r.status for r in batched] == ["ok"] * 3
    assert all(0 < r.n_tokens <= 8 and r.error is None for r in batched)
    assert [(r.text, r.n_tokens) for r in batched] == [(r.text, r.n_tokens) for r in single]
    # the outputs depend on the image, so the equality above compares real work
    assert len({r.text for r in batched}) > 1


def test_model_loads_once_per_captioner(tiny_llava, monkeypatch):
    from transformers import LlavaForConditionalGeneration

    calls = []
    real = LlavaForConditionalGeneration.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LlavaForConditionalGeneration, "from_pretrained", classmethod(counting))
    before = HFLlavaCaptioner.load_count
    cap = HFLlavaCaptioner(tiny_llava, instruction=INSTRUCTION, device="cpu", max_new_tokens=2, batch_size=2)
    for _ in range(2):
        assert [r.status for r in cap.caption(noise_images(3))] == ["ok"] * 3
    assert calls == [tiny_llava] and HFLlavaCaptioner.load_count == before + 1


def test_bad_images_are_error_rows_and_the_rest_is_unchanged(captioner):
    good = noise_images(2, seed=1)
    buf = io.BytesIO()
    noise_images(1, seed=2)[0].save(buf, format="JPEG")
    truncated = Image.open(io.BytesIO(buf.getvalue()[: buf.tell() // 2]))  # opens lazily; decoding fails
    out = captioner.caption([good[0], None, truncated, good[1]], keys(4))
    assert [r.status for r in out] == ["ok", "error", "error", "ok"]
    assert out[1].error == "v1s/u/1: not an image (NoneType)" and out[1].text is None
    assert out[2].error.startswith("v1s/u/2: unreadable image (OSError")
    alone = captioner.caption(good)
    assert [out[0].text, out[3].text] == [r.text for r in alone]


def test_a_failure_inside_a_batch_costs_only_its_item(captioner, monkeypatch):
    real = captioner.processor

    class FailsOnSquare:
        def __call__(self, images, **kwargs):
            if any(img.size == (20, 20) for img in images):
                raise RuntimeError("processor broke")
            return real(images=images, **kwargs)

    monkeypatch.setattr(captioner, "processor", FailsOnSquare())
    images = noise_images(2) + [Image.new("RGB", (20, 20))]
    out = captioner.caption(images, keys(3))
    assert [r.status for r in out] == ["ok", "ok", "error"]
    assert out[2].error == "v1s/u/2: captioning failed (RuntimeError: processor broke)"


def test_isolate_failures_retries_item_by_item():
    seen = []

    def run(batch):
        seen.append(list(batch))
        if "bad" in batch:
            raise ValueError("bad item")
        return [x.upper() for x in batch]

    out = isolate_failures(["a", "bad", "c", "d"], 3, run, lambda i, exc: f"error {i}: {exc}")
    assert out == ["A", "error 1: bad item", "C", "D"]
    assert seen == [["a", "bad", "c"], ["a"], ["bad"], ["c"], ["d"]]
    with pytest.raises(ValueError, match="batch_size"):
        isolate_failures(["a"], 0, run, lambda i, exc: None)


def test_keys_must_match_images(captioner):
    with pytest.raises(ValueError, match="2 images but 1 keys"):
        captioner.caption(noise_images(2), keys(1))


def test_reference_captioner(tmp_path):
    (tmp_path / "scene_descriptions.jsonl").write_text(
        '{"label": "v1s", "uid": "u", "frame": 0, "description": "A dog barks."}\nnot json\n'
    )
    cap = CAPTIONERS.get("reference").build(load_config(None, [f"dataset.root={tmp_path}"]))
    assert isinstance(cap, ReferenceCaptioner)
    ok, missing = cap.caption([None, None], keys(2))
    assert (ok.text, ok.status) == ("A dog barks.", "ok")
    assert missing.status == "error" and "no reference description for v1s/u/1" in missing.error
    assert "1 unreadable lines" in missing.error
    with pytest.raises(FileNotFoundError, match="scene descriptions"):
        ReferenceCaptioner(tmp_path / "absent")


def test_vllm_requests_are_built_without_vllm():
    images = noise_images(2)
    reqs = build_vllm_caption_requests(images, "  Describe this picture ")
    assert [r["prompt"] for r in reqs] == ["USER: <image>\nDescribe this picture\nASSISTANT:"] * 2
    assert [r["multi_modal_data"]["image"] for r in reqs] == images
    assert vllm_sampling_kwargs(32) == {"max_tokens": 32, "temperature": 0.0}
    with pytest.raises(ValueError, match="max_new_tokens"):
        vllm_sampling_kwargs(0)
    assert "vllm" not in sys.modules


class FakeLLM:
    """Stands in for vllm.LLM: records the engine settings and answers by prompt position."""

    instances: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        FakeLLM.instances.append(self)

    def generate(self, requests, sampling, use_tqdm=True):
        self.calls.append((requests, sampling))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" ASSISTANT: caption\n{i} ", token_ids=[7] * (i + 1))]) for i in range(len(requests))]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: ("SamplingParams", kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.instances.clear()
    return module


def test_vllm_captioner_wiring_with_a_fake_engine(fake_vllm):
    before = VLLMCaptioner.load_count
    cap = VLLMCaptioner("llava-hf/llava-1.5-7b-hf", instruction=INSTRUCTION, max_new_tokens=16, tensor_parallel_size=2)
    (engine,) = FakeLLM.instances
    assert engine.kwargs["tensor_parallel_size"] == 2 and engine.kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert VLLMCaptioner.load_count == before + 1
    images = noise_images(2)
    out = cap.caption([images[0], None, images[1]], keys(3))
    assert [(r.status, r.text, r.n_tokens) for r in out[::2]] == [("ok", "caption 0", 1), ("ok", "caption 1", 2)]
    assert out[1].status == "error"
    requests, sampling = engine.calls[0]
    assert [r["multi_modal_data"]["image"] for r in requests] == [img.convert("RGB") for img in images]
    assert sampling == ("SamplingParams", {"max_tokens": 16, "temperature": 0.0})
    assert cap.provenance()["model"] == "llava-hf/llava-1.5-7b-hf"


def test_vllm_backend_without_vllm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a CPU machine
    with pytest.raises(ImportError, match=r"\.\[gpu\]"):
        VLLMCaptioner("llava-hf/llava-1.5-7b-hf", instruction=INSTRUCTION)


def test_prompt_clean_up_and_settings():
    assert llava_prompt("  Describe  ") == "USER: <image>\nDescribe\nASSISTANT:"
    assert clean_caption("ASSISTANT:  A dog\n\n barks. ") == "A dog barks."
    assert clean_caption("A man says ASSISTANT: hi") == "A man says ASSISTANT: hi"
    with pytest.raises(ValueError, match="instruction is empty"):
        llava_prompt("  ")
    with pytest.raises(ConfigError, match="unknown captions backend 'gpt'; known: hf, reference, vllm"):
        load_config(None, ["captions.backend=gpt"])
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8", resolve_device("cpu"))
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
