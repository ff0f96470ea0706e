"""Cue-reasoning backends: a chat LLM (LLaMA-2-chat) reads a caption through a prompt template
(pipeline.prompts) and answers in free text; pipeline.cue_parser turns that into cues.

`reason(template, captions) -> list[ReasonerResult]`, batched. Messages go through the
tokenizer's own chat template, so any chat model's format is right without hand-written tags.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.cue_parser import CUES_JSON_SCHEMA
from pipeline.generation import resolve_device, resolve_dtype, vllm_sampling_kwargs


@dataclass
class ReasonerResult:
    raw_text: str | None
    n_tokens: int | None
    status: str  # "ok" or "error"
    error: str | None = None


def chat_messages(template, caption: str) -> list[dict]:
    messages = [{"role": "system", "content": template.system}] if template.system else []
    return messages + [{"role": "user", "content": template.render(caption)}]


class HFChatReasoner:
    name = "hf"

    def __init__(self, model: str, dtype: str = "auto", device: str = "auto", max_new_tokens: int = 512, batch_size: int = 8):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id, self.max_new_tokens, self.batch_size = model, max_new_tokens, batch_size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:  # LLaMA-2 ships none; padding is masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype).to(self.device).eval()

    def reason(self, template, captions: list[str]) -> list[ReasonerResult]:
        out: list[ReasonerResult] = []
        for start in range(0, len(captions), self.batch_size):
            out += self._generate(template, captions[start : start + self.batch_size])
        return out

    def _generate(self, template, captions: list[str]) -> list[ReasonerResult]:
        import torch

        prompts = [self.tokenizer.apply_chat_template(chat_messages(template, c), tokenize=False, add_generation_prompt=True) for c in captions]
        # the chat template already wrote the BOS token
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            gen = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        new = gen[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [ReasonerResult(t.strip(), int((row != self.tokenizer.pad_token_id).sum()), "ok") for t, row in zip(texts, new)]


def build_vllm_chat_requests(template, captions: list[str]) -> list[list[dict]]:
    """One conversation per caption, for `LLM.chat`."""
    return [chat_messages(template, c) for c in captions]


def vllm_structured_kwargs(structured: bool) -> dict:
    """Extra SamplingParams arguments: JSON-schema constrained decoding when asked for."""
    return {"json": CUES_JSON_SCHEMA} if structured else {}


class VLLMChatReasoner:
    name = "vllm"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        max_new_tokens: int = 512,
        tensor_parallel_size: int = 1,
        max_model_len: int = 4096,
        max_num_seqs: int = 64,
        gpu_memory_utilization: float = 0.9,
        structured: bool = False,
    ):
        from vllm import LLM, SamplingParams  # GPU-only extra

        self.model_id = model
        self.llm = LLM(
            model=model, dtype=dtype, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            max_num_seqs=max_num_seqs, gpu_memory_utilization=gpu_memory_utilization,
        )
        kwargs = vllm_sampling_kwargs(max_new_tokens)
        if structured:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(**vllm_structured_kwargs(True))
        self.sampling = SamplingParams(**kwargs)

    def reason(self, template, captions: list[str]) -> list[ReasonerResult]:
        outputs = self.llm.chat(build_vllm_chat_requests(template, captions), self.sampling)
        return [ReasonerResult(o.outputs[0].text.strip(), len(o.outputs[0].token_ids), "ok") for o in outputs]


def build_reasoner(backend: str, **kwargs):
    backends = {"hf": HFChatReasoner, "vllm": VLLMChatReasoner}
    if backend not in backends:
        raise ValueError(f"unknown reasoning backend {backend!r}; choose one of {sorted(backends)}")
    return backends[backend](**kwargs)
