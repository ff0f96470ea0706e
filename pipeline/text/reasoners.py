"""Cue-reasoning backends: a chat LLM (LLaMA-2-chat in the paper) reads one caption through a
prompt template and answers in free text. Parsing that answer into cues is the caller's job
(pipeline.text.cue_parser); this module returns the raw text.

`reason(template, captions) -> list[ReasonerResult]`, batched. The template is duck-typed: it
needs `.system` (may be empty) and `.render(caption) -> str`. Messages go through the
tokenizer's own chat template, so each chat model gets its own format ([INST] <<SYS>> for
Llama-2) without hand-written tags.

- `hf`: transformers AutoModelForCausalLM, left-padded batched `generate`, greedy by default.
- `vllm`: offline `LLM.chat` (GPU-only extra, imported inside the constructor), optionally with
  JSON-schema constrained output (`StructuredOutputsParams`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.text.cue_parser import CUES_JSON_SCHEMA
from pipeline.text.results import ReasonerResult
from pipeline.text.generation import (
    describe_error,
    eos_ids,
    generated_lengths,
    isolate_failures,
    resolve_device,
    resolve_dtype,
    vllm_sampling_kwargs,
)




def chat_messages(template, caption: str) -> list[dict]:
    """[system, user] for one caption; no system message when the template has none."""
    messages = [{"role": "system", "content": template.system}] if template.system else []
    return messages + [{"role": "user", "content": template.render(caption)}]


def _conversations(template, captions: list[str]) -> tuple[list[list[dict] | None], list[ReasonerResult | None]]:
    """One conversation per caption; an error result where the template cannot render a caption."""
    convs: list[list[dict] | None] = []
    results: list[ReasonerResult | None] = []
    for i, caption in enumerate(captions):
        try:
            if not isinstance(caption, str):
                raise TypeError(f"the caption is {type(caption).__name__}, not text")
            convs.append(chat_messages(template, caption))
            results.append(None)
        except (ValueError, TypeError) as exc:
            convs.append(None)
            results.append(ReasonerResult(None, None, "error", f"caption {i}: prompt not built ({exc})"))
    return convs, results


def _reason_in_batches(
    template, captions: list[str], batch_size: int, run_batch: Callable[[list[list[dict]]], list[ReasonerResult]]
) -> list[ReasonerResult]:
    convs, results = _conversations(template, captions)
    todo = [i for i, c in enumerate(convs) if c is not None]

    def failed(pos: int, exc: Exception) -> ReasonerResult:
        return ReasonerResult(None, None, "error", f"caption {todo[pos]}: generation failed ({describe_error(exc)})")

    done = isolate_failures([convs[i] for i in todo], batch_size, run_batch, failed)
    for i, res in zip(todo, done):
        results[i] = res
    return results  # type: ignore[return-value]


class HFChatReasoner:
    """A chat LLM through transformers; one model load per object."""

    name = "hf"
    load_count = 0  # models loaded by this class in this process (tests assert one per object)

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        max_new_tokens: int = 512,
        do_sample: bool = False,
        batch_size: int = 8,
    ):
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
        self.model_id = model
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens, self.do_sample, self.batch_size = max_new_tokens, do_sample, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if not self.tokenizer.chat_template:
            raise ValueError(f"{model}'s tokenizer has no chat template; the reasoner needs a chat model (e.g. Llama-2-chat)")
        # Generation continues from the right edge of every row, so padding goes on the left.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:  # Llama-2 ships none; padded positions are masked out
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype).to(self.device).eval()
        self.eos = eos_ids(self.model.generation_config, self.tokenizer)
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        type(self).load_count += 1

    def provenance(self) -> dict:
        return {
            "backend": self.name, "model": self.model_id, "dtype": str(self.dtype).removeprefix("torch."),
            "max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
        }

    def reason(self, template, captions: list[str]) -> list[ReasonerResult]:
        return _reason_in_batches(template, captions, self.batch_size, self._generate)

    def _generate(self, conversations: list[list[dict]]) -> list[ReasonerResult]:
        # The chat template writes BOS itself; apply_chat_template tokenizes without adding another.
        inputs = self.tokenizer.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, padding=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]  # the longest prompt of the batch
        if self.context is not None and prompt_len + self.max_new_tokens > self.context:
            raise ValueError(
                f"prompt of {prompt_len} tokens plus max_new_tokens={self.max_new_tokens} exceeds the model's "
                f"context of {self.context} tokens; use a shorter template or fewer new tokens"
            )
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, prompt_len:]  # (B, generated)
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [ReasonerResult(t.strip(), n, "ok") for t, n in zip(texts, generated_lengths(new, self.eos))]


def build_vllm_chat_requests(template, captions: list[str]) -> list[list[dict]]:
    """One conversation per caption, for `LLM.chat`."""
    return [chat_messages(template, c) for c in captions]


def vllm_reasoner_sampling_kwargs(max_new_tokens: int, temperature: float = 0.0, structured: bool = False) -> dict:
    """SamplingParams arguments; with `structured`, the answer is constrained to CUES_JSON_SCHEMA
    (`structured_outputs` holds StructuredOutputsParams' arguments)."""
    kwargs = vllm_sampling_kwargs(max_new_tokens, temperature)
    if structured:
        kwargs["structured_outputs"] = {"json": CUES_JSON_SCHEMA}
    return kwargs


class VLLMChatReasoner:
    """A chat LLM through vLLM's offline engine (GPU). vLLM batches internally, so each call
    submits all its captions at once; a failing call is retried caption by caption."""

    name = "vllm"
    load_count = 0

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        structured: bool = False,
        tensor_parallel_size: int = 1,
        max_model_len: int = 4096,
        max_num_seqs: int = 64,
        gpu_memory_utilization: float = 0.9,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError("the vllm reasoning backend needs vLLM on a GPU machine: pip install -e '.[gpu]'") from exc

        self.model_id, self.dtype = model, dtype
        self.sampling_kwargs = vllm_reasoner_sampling_kwargs(max_new_tokens, temperature, structured)
        kwargs = dict(self.sampling_kwargs)
        if structured:
            try:
                from vllm.sampling_params import StructuredOutputsParams
            except ImportError as exc:  # older releases called it GuidedDecodingParams
                raise ImportError("structured cue output needs a vLLM with StructuredOutputsParams (0.10.2 or newer)") from exc
            kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
        self.sampling = SamplingParams(**kwargs)  # built before the engine: a bad setting fails fast
        self.llm = LLM(
            model=model, dtype=dtype, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            max_num_seqs=max_num_seqs, gpu_memory_utilization=gpu_memory_utilization,
        )
        type(self).load_count += 1

    def provenance(self) -> dict:
        return {"backend": self.name, "model": self.model_id, "dtype": self.dtype, **self.sampling_kwargs}

    def reason(self, template, captions: list[str]) -> list[ReasonerResult]:
        return _reason_in_batches(template, captions, max(1, len(captions)), self._generate)

    def _generate(self, conversations: list[list[dict]]) -> list[ReasonerResult]:
        outputs = self.llm.chat(conversations, self.sampling, use_tqdm=False, add_generation_prompt=True)
        return [ReasonerResult(o.outputs[0].text.strip(), len(o.outputs[0].token_ids), "ok") for o in outputs]
