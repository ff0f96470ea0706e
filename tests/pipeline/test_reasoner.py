import sys

import pytest

from pipeline.prompts import load_template
from pipeline.reasoner import HFChatReasoner, build_reasoner, build_vllm_chat_requests, chat_messages, vllm_structured_kwargs
from tests.fixtures.tiny_models import make_tiny_llama_chat


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return make_tiny_llama_chat(tmp_path_factory.mktemp("llama"))


def test_hf_reasoner_batched_equals_single(tiny_llama):
    template = load_template("direct_zeroshot")
    captions = ["a dog is barking on the left", "a man playing the guitar", "a red car"]
    batched = HFChatReasoner(tiny_llama, device="cpu", max_new_tokens=5, batch_size=3).reason(template, captions)
    single = HFChatReasoner(tiny_llama, device="cpu", max_new_tokens=5, batch_size=1).reason(template, captions)
    assert [r.status for r in batched] == ["ok"] * 3 and all(0 < r.n_tokens <= 5 for r in batched)
    assert [r.raw_text for r in batched] == [r.raw_text for r in single]


def test_chat_template_formats_llama2(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    template = load_template("cot_zeroshot")
    text = tok.apply_chat_template(chat_messages(template, "a dog"), tokenize=False, add_generation_prompt=True)
    assert text.startswith("<s>[INST] <<SYS>> ") and text.endswith(" [/INST]") and "a dog" in text


def test_vllm_requests_without_vllm():
    template = load_template("cot_fewshot")
    convs = build_vllm_chat_requests(template, ["a dog", "a bell"])
    assert [m["role"] for m in convs[0]] == (["system", "user"] if template.system else ["user"])
    assert "a bell" in convs[1][-1]["content"]
    assert vllm_structured_kwargs(True)["json"]["type"] == "object" and vllm_structured_kwargs(False) == {}
    assert "vllm" not in sys.modules
    with pytest.raises(ValueError, match="unknown reasoning backend"):
        build_reasoner("nope")


def test_config_engine_settings_fit_the_vllm_backends():
    import inspect

    from pipeline.captioner import VLLMCaptioner
    from pipeline.config import load_config
    from pipeline.reasoner import VLLMChatReasoner

    cfg = load_config(None, ["captions.vllm.tensor_parallel_size=2"])
    caption_kwargs = cfg.captions.vllm.engine_kwargs(multimodal=True)
    assert caption_kwargs["tensor_parallel_size"] == 2 and caption_kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert set(caption_kwargs) <= set(inspect.signature(VLLMCaptioner).parameters)
    assert set(cfg.cues.vllm.engine_kwargs()) <= set(inspect.signature(VLLMChatReasoner).parameters)
    assert "limit_mm_per_prompt" not in cfg.cues.vllm.engine_kwargs()
