"""Captioning backends with one interface: `caption(images, keys) -> list[CaptionResult]`.

- `hf`: transformers LlavaForConditionalGeneration + its processor (PIL image processors, no
  torchvision), LLaVA-1.5 prompt format, left-padded batched greedy `generate`.
- `vllm`: offline `LLM.generate` with `multi_modal_data` (GPU extra; imported lazily).
- `reference`: the dataset's own descriptions (pipeline.reference_captions).
The model is loaded once, when the captioner is built; the stage builds one per worker.
"""
from __future__ import annotations

from PIL import Image

from pipeline.generation import clean_output, llava_prompt, resolve_device, resolve_dtype, vllm_sampling_kwargs
from pipeline.reference_captions import CaptionResult, ReferenceCaptioner


class HFLlavaCaptioner:
    name = "hf"

    def __init__(self, model: str, instruction: str, dtype: str = "auto", device: str = "auto", max_new_tokens: int = 256, batch_size: int = 8):
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        self.model_id, self.instruction = model, instruction
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.processor = AutoProcessor.from_pretrained(model)
        self.processor.tokenizer.padding_side = "left"  # generation continues from the right edge
        self.model = LlavaForConditionalGeneration.from_pretrained(model, dtype=self.dtype).to(self.device).eval()

    def provenance(self) -> dict:
        return {"backend": self.name, "model": self.model_id, "dtype": str(self.dtype), "max_new_tokens": self.max_new_tokens, "do_sample": False}

    def caption(self, images: list[Image.Image | None], keys: list[dict] | None = None) -> list[CaptionResult]:
        results: list[CaptionResult | None] = [None] * len(images)
        good = []
        for i, img in enumerate(images):
            if isinstance(img, Image.Image):
                good.append(i)
            else:
                results[i] = CaptionResult(None, None, "error", f"not an image: {type(img).__name__}")
        for start in range(0, len(good), self.batch_size):
            idx = good[start : start + self.batch_size]
            for i, res in zip(idx, self._generate([images[i] for i in idx])):
                results[i] = res
        return results  # type: ignore[return-value]

    def _generate(self, images: list[Image.Image]) -> list[CaptionResult]:
        import torch

        prompt = llava_prompt(self.instruction)
        inputs = self.processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device, self.dtype) if k == "pixel_values" else v.to(self.device)) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=self.processor.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1] :]  # (B, generated)
        pad = self.processor.tokenizer.pad_token_id
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        return [CaptionResult(clean_output(t), int((row != pad).sum()), "ok") for t, row in zip(texts, new)]


def build_vllm_caption_requests(images: list[Image.Image], instruction: str) -> list[dict]:
    """vLLM offline requests: one prompt per image with the image as multi-modal data."""
    prompt = llava_prompt(instruction)
    return [{"prompt": prompt, "multi_modal_data": {"image": img}} for img in images]


class VLLMCaptioner:
    name = "vllm"

    def __init__(
        self,
        model: str,
        instruction: str,
        dtype: str = "auto",
        max_new_tokens: int = 256,
        tensor_parallel_size: int = 1,
        max_model_len: int = 4096,
        max_num_seqs: int = 64,
        limit_mm_per_prompt: dict | None = None,
        gpu_memory_utilization: float = 0.9,
    ):
        from vllm import LLM, SamplingParams  # GPU-only extra: imported here, never at module load

        self.model_id, self.instruction, self.max_new_tokens = model, instruction, max_new_tokens
        self.llm = LLM(
            model=model,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            limit_mm_per_prompt=limit_mm_per_prompt or {"image": 1},
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.sampling = SamplingParams(**vllm_sampling_kwargs(max_new_tokens))

    def provenance(self) -> dict:
        return {"backend": self.name, "model": self.model_id, "max_new_tokens": self.max_new_tokens}

    def caption(self, images: list[Image.Image | None], keys: list[dict] | None = None) -> list[CaptionResult]:
        results: list[CaptionResult | None] = [None] * len(images)
        good = [i for i, img in enumerate(images) if isinstance(img, Image.Image)]
        for i in set(range(len(images))) - set(good):
            results[i] = CaptionResult(None, None, "error", f"not an image: {type(images[i]).__name__}")
        if good:
            outputs = self.llm.generate(build_vllm_caption_requests([images[i] for i in good], self.instruction), self.sampling)
            for i, out in zip(good, outputs):
                completion = out.outputs[0]
                results[i] = CaptionResult(clean_output(completion.text), len(completion.token_ids), "ok")
        return results  # type: ignore[return-value]


def build_captioner(backend: str, **kwargs):
    backends = {"hf": HFLlavaCaptioner, "vllm": VLLMCaptioner, "reference": ReferenceCaptioner}
    if backend not in backends:
        raise ValueError(f"unknown captioning backend {backend!r}; choose one of {sorted(backends)}")
    return backends[backend](**kwargs)
