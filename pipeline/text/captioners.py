"""Captioning backends behind one interface: `caption(images, keys) -> list[CaptionResult]`.

- `hf`: transformers `LlavaForConditionalGeneration` + its processor (PIL image processors; no
  torchvision), LLaVA-1.5 prompt format, left-padded batched `generate`, greedy by default.
- `vllm`: offline `LLM.generate` with the image as `multi_modal_data` (GPU-only extra, imported
  inside the constructor so this module imports without it).
- `reference`: the dataset's own descriptions (pipeline.text.reference_captions), for machines
  without captioning weights.

The hf and vllm backends build the same prompt and clean their output the same way
(pipeline.text.generation). The model loads once, when the captioner is built; the stage builds one
captioner per worker. A bad image gives an error result for that item only; the rest of its
batch is captioned.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from pipeline.text.generation import (
    clean_caption,
    describe_error,
    eos_ids,
    generated_lengths,
    isolate_failures,
    llava_prompt,
    resolve_device,
    resolve_dtype,
    vllm_sampling_kwargs,
)
from pipeline.text.reference_captions import CaptionResult, ReferenceCaptioner

__all__ = [
    "CaptionResult",
    "Captioner",
    "HFLlavaCaptioner",
    "ReferenceCaptioner",
    "VLLMCaptioner",
    "build_vllm_caption_requests",
]


class Captioner(Protocol):
    name: str

    def provenance(self) -> dict: ...

    def caption(self, images: list[Image.Image | None], keys: list[dict] | None = None) -> list[CaptionResult]: ...


def _where(keys: list[dict] | None, i: int) -> str:
    """'label/uid/frame' of item i for error messages, or its position when no keys were given."""
    if keys and {"label", "uid", "frame"} <= keys[i].keys():
        return f"{keys[i]['label']}/{keys[i]['uid']}/{keys[i]['frame']}"
    return f"item {i}"


def prepare_images(images: list, keys: list[dict] | None) -> tuple[list[Image.Image | None], list[CaptionResult | None]]:
    """RGB copies of the usable images; an error result where an item is not a readable image."""
    if keys is not None and len(keys) != len(images):
        raise ValueError(f"caption() got {len(images)} images but {len(keys)} keys; give one key per image")
    ready: list[Image.Image | None] = []
    errors: list[CaptionResult | None] = []
    for i, img in enumerate(images):
        if not isinstance(img, Image.Image):
            ready.append(None)
            errors.append(CaptionResult(None, None, "error", f"{_where(keys, i)}: not an image ({type(img).__name__})"))
            continue
        try:
            if img.width < 1 or img.height < 1:
                raise ValueError(f"empty image ({img.width}x{img.height})")
            ready.append(img.convert("RGB"))  # decodes lazily-opened files: a truncated one fails here
            errors.append(None)
        except (OSError, ValueError) as exc:
            ready.append(None)
            errors.append(CaptionResult(None, None, "error", f"{_where(keys, i)}: unreadable image ({describe_error(exc)})"))
    return ready, errors


def _caption_in_batches(
    images: list, keys: list[dict] | None, batch_size: int, run_batch: Callable[[list[Image.Image]], list[CaptionResult]]
) -> list[CaptionResult]:
    ready, results = prepare_images(images, keys)
    todo = [i for i, img in enumerate(ready) if img is not None]

    def failed(pos: int, exc: Exception) -> CaptionResult:
        return CaptionResult(None, None, "error", f"{_where(keys, todo[pos])}: captioning failed ({describe_error(exc)})")

    done = isolate_failures([ready[i] for i in todo], batch_size, run_batch, failed)
    for i, res in zip(todo, done):
        results[i] = res
    return results  # type: ignore[return-value]


class HFLlavaCaptioner:
    """LLaVA-1.5 through transformers; one model load per object."""

    name = "hf"
    load_count = 0  # models loaded by this class in this process (tests assert one per object)

    def __init__(
        self,
        model: str,
        *,
        instruction: str,
        dtype: str = "auto",
        device: str = "auto",
        max_new_tokens: int = 256,
        do_sample: bool = False,
        batch_size: int = 8,
    ):
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
        self.model_id, self.instruction, self.prompt = model, instruction, llava_prompt(instruction)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens, self.do_sample, self.batch_size = max_new_tokens, do_sample, batch_size
        self.processor = AutoProcessor.from_pretrained(model)
        self.tokenizer = self.processor.tokenizer
        # Generation continues from the right edge of every row, so padding goes on the left.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token  # masked out by the attention mask
        self.model = LlavaForConditionalGeneration.from_pretrained(model, dtype=self.dtype).to(self.device).eval()
        self.eos = eos_ids(self.model.generation_config, self.tokenizer)
        type(self).load_count += 1

    def provenance(self) -> dict:
        return {
            "backend": self.name, "model": self.model_id, "dtype": str(self.dtype).removeprefix("torch."),
            "instruction": self.instruction, "max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
        }

    def caption(self, images: list[Image.Image | None], keys: list[dict] | None = None) -> list[CaptionResult]:
        return _caption_in_batches(images, keys, self.batch_size, self._generate)

    def _generate(self, images: list[Image.Image]) -> list[CaptionResult]:
        inputs = self.processor(images=images, text=[self.prompt] * len(images), return_tensors="pt", padding=True)
        inputs = inputs.to(device=self.device, dtype=self.dtype)  # casts pixel_values only; ids stay integer
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, inputs["input_ids"].shape[1] :]  # (B, generated): the prompt is not part of the caption
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [CaptionResult(clean_caption(t), n, "ok") for t, n in zip(texts, generated_lengths(new, self.eos))]


def build_vllm_caption_requests(images: list[Image.Image], instruction: str) -> list[dict]:
    """vLLM offline requests: the LLaVA-1.5 prompt, with each image as multi-modal data."""
    prompt = llava_prompt(instruction)
    return [{"prompt": prompt, "multi_modal_data": {"image": img}} for img in images]


class VLLMCaptioner:
    """LLaVA-1.5 through vLLM's offline engine (GPU). vLLM batches internally, so each call
    submits all its images at once; a failing call is retried image by image."""

    name = "vllm"
    load_count = 0

    def __init__(
        self,
        model: str,
        *,
        instruction: str,
        dtype: str = "auto",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        tensor_parallel_size: int = 1,
        max_model_len: int = 4096,
        max_num_seqs: int = 64,
        limit_mm_per_prompt: dict[str, int] | None = None,
        gpu_memory_utilization: float = 0.9,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError("the vllm captioning backend needs vLLM on a GPU machine: pip install -e '.[gpu]'") from exc

        self.model_id, self.instruction, self.dtype = model, instruction, dtype
        llava_prompt(instruction)  # an empty instruction fails here, before the engine starts
        self.sampling_kwargs = vllm_sampling_kwargs(max_new_tokens, temperature)
        self.sampling = SamplingParams(**self.sampling_kwargs)
        self.llm = LLM(
            model=model, dtype=dtype, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            max_num_seqs=max_num_seqs, limit_mm_per_prompt=limit_mm_per_prompt or {"image": 1},
            gpu_memory_utilization=gpu_memory_utilization,
        )
        type(self).load_count += 1

    def provenance(self) -> dict:
        return {"backend": self.name, "model": self.model_id, "dtype": self.dtype, "instruction": self.instruction, **self.sampling_kwargs}

    def caption(self, images: list[Image.Image | None], keys: list[dict] | None = None) -> list[CaptionResult]:
        return _caption_in_batches(images, keys, max(1, len(images)), self._generate)

    def _generate(self, images: list[Image.Image]) -> list[CaptionResult]:
        outputs = self.llm.generate(build_vllm_caption_requests(images, self.instruction), self.sampling, use_tqdm=False)
        return [CaptionResult(clean_caption(o.outputs[0].text), len(o.outputs[0].token_ids), "ok") for o in outputs]
