import inspect
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.text.cue_parser import CUES_JSON_SCHEMA
from pipeline.text.reasoners import (
    HFChatReasoner,
    VLLMChatReasoner,
    build_vllm_chat_requests,
    chat_messages,
    vllm_reasoner_sampling_kwargs,
)
from pipeline.text.tiny_models import make_tiny_llama_chat

# Very different lengths, so a batch is padded and a padding bug would change the answers.
CAPTIONS = [
    "a dog",
    "a man playing the guitar on the left and a woman singing in the middle of the scene",
    "a red car with a siren at the bottom",
]


@dataclass
class DummyTemplate:
    system: str = "Which objects could be making sound ?"

    def render(self, caption: str) -> str:
        if not caption.strip():
            raise ValueError("the caption is empty")
        return f"Describe the sounding objects in : {caption} Answer :"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return make_tiny_llama_chat(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def reasoner(tiny_llama):
    return HFChatReasoner(tiny_llama, device="cpu", max_new_tokens=6, batch_size=3)


def test_hf_reasoner_batch_matches_one_at_a_time(tiny_llama, reasoner):
    batched = reasoner.reason(DummyTemplate(), CAPTIONS)
    single = HFChatReasoner(tiny_llama, device="cpu", max_new_tokens=6, batch_size=1).reason(DummyTemplate(), CAPTIONS)
    assert [r.status for r in batched] == ["ok"] * 3
    assert all(0 < r.n_tokens <= 6 and isinstance(r.raw_text, str) for r in batched)
    assert [(r.raw_text, r.n_tokens) for r in batched] == [(r.raw_text, r.n_tokens) for r in single]
    assert len({r.raw_text for r in batched}) > 1  # answers depend on the caption: the comparison means something


def test_llama2_chat_format(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    text = tok.apply_chat_template(chat_messages(DummyTemplate(), "a dog"), tokenize=False, add_generation_prompt=True)
    assert text == (
        "<s>[INST] <<SYS>>\nWhich objects could be making sound ?\n<</SYS>>\n\n"
        "Describe the sounding objects in : a dog Answer : [/INST]"
    )
    no_system = tok.apply_chat_template(chat_messages(DummyTemplate(system=""), "a dog"), tokenize=False, add_generation_prompt=True)
    assert no_system == "<s>[INST] Describe the sounding objects in : a dog Answer : [/INST]"


def test_model_loads_once_per_reasoner(tiny_llama, monkeypatch):
    from transformers import AutoModelForCausalLM

    calls = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    before = HFChatReasoner.load_count
    r = HFChatReasoner(tiny_llama, device="cpu", max_new_tokens=2, batch_size=2)
    for _ in range(2):
        assert [x.status for x in r.reason(DummyTemplate(), CAPTIONS)] == ["ok"] * 3
    assert calls == [tiny_llama] and HFChatReasoner.load_count == before + 1


def test_bad_captions_are_error_rows(reasoner):
    out = reasoner.reason(DummyTemplate(), ["a dog", "  ", None, CAPTIONS[2]])
    assert [r.status for r in out] == ["ok", "error", "error", "ok"]
    assert out[1].error == "caption 1: prompt not built (the caption is empty)"
    assert out[2].error == "caption 2: prompt not built (the caption is NoneType, not text)"
    alone = reasoner.reason(DummyTemplate(), ["a dog", CAPTIONS[2]])
    assert [out[0].raw_text, out[3].raw_text] == [r.raw_text for r in alone]


def test_a_prompt_beyond_the_context_is_an_error_row_only(reasoner, monkeypatch):
    monkeypatch.setattr(reasoner, "context", 40)
    out = reasoner.reason(DummyTemplate(), ["a dog", " ".join(["dog"] * 60)])
    assert [r.status for r in out] == ["ok", "error"]
    assert "exceeds the model's context of 40 tokens" in out[1].error


def test_a_model_without_chat_template_is_refused(tmp_path):
    path = Path(make_tiny_llama_chat(tmp_path / "llama"))
    (path / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        HFChatReasoner(str(path), device="cpu")


def test_vllm_requests_are_built_without_vllm():
    convs = build_vllm_chat_requests(DummyTemplate(), ["a dog", "a bell"])
    assert [[m["role"] for m in c] for c in convs] == [["system", "user"]] * 2
    assert convs[1][1]["content"] == "Describe the sounding objects in : a bell Answer :"
    assert vllm_reasoner_sampling_kwargs(64) == {"max_tokens": 64, "temperature": 0.0}
    assert vllm_reasoner_sampling_kwargs(64, structured=True)["structured_outputs"] == {"json": CUES_JSON_SCHEMA}
    assert "vllm" not in sys.modules
    with pytest.raises(ConfigError, match="unknown cues backend 'nope'; known: cot_rules, hf, nouns, vllm"):
        load_config(None, ["cues.backend=nope"])


class FakeLLM:
    """Stands in for vllm.LLM: records the engine settings and echoes the user message length."""

    instances: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        FakeLLM.instances.append(self)

    def chat(self, conversations, sampling, use_tqdm=True, add_generation_prompt=True):
        self.calls.append((conversations, sampling))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=" Answer: [dog]\n", token_ids=[1] * len(c[-1]["content"]))]) for c in conversations]


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kw: ("SamplingParams", kw)
    sampling_params = types.ModuleType("vllm.sampling_params")
    sampling_params.StructuredOutputsParams = lambda **kw: ("StructuredOutputsParams", kw)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_params)
    FakeLLM.instances.clear()


def test_vllm_reasoner_wiring_with_a_fake_engine(fake_vllm):
    before = VLLMChatReasoner.load_count
    r = VLLMChatReasoner("meta-llama/Llama-2-7b-chat-hf", max_new_tokens=32, structured=True, max_model_len=2048)
    (engine,) = FakeLLM.instances
    assert engine.kwargs["max_model_len"] == 2048 and "limit_mm_per_prompt" not in engine.kwargs
    assert VLLMChatReasoner.load_count == before + 1
    out = r.reason(DummyTemplate(), ["a dog", "", "a bell"])
    assert [(x.status, x.raw_text) for x in out] == [("ok", "Answer: [dog]"), ("error", None), ("ok", "Answer: [dog]")]
    conversations, sampling = engine.calls[0]
    assert conversations == build_vllm_chat_requests(DummyTemplate(), ["a dog", "a bell"])
    structured = ("StructuredOutputsParams", {"json": CUES_JSON_SCHEMA})
    assert sampling == ("SamplingParams", {"max_tokens": 32, "temperature": 0.0, "structured_outputs": structured})


def test_config_engine_settings_fit_the_vllm_backends():
    from pipeline.text.captioners import VLLMCaptioner
    from pipeline.config import load_config

    cfg = load_config(None, ["captions.vllm.tensor_parallel_size=2"])
    caption_kwargs = cfg.captions.vllm.engine_kwargs(multimodal=True)
    assert caption_kwargs["tensor_parallel_size"] == 2 and caption_kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert set(caption_kwargs) <= set(inspect.signature(VLLMCaptioner).parameters)
    assert set(cfg.cues.vllm.engine_kwargs()) <= set(inspect.signature(VLLMChatReasoner).parameters)
    assert "limit_mm_per_prompt" not in cfg.cues.vllm.engine_kwargs()
