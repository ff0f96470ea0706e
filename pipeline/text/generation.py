"""What the captioning and reasoning backends share: device and dtype choice, LLaVA-1.5 prompt
building, output clean-up, counting generated tokens, per-item failure isolation, and vLLM's
sampling settings.

Kept free of transformers and vLLM imports so the pure parts (prompts, requests, sampling
arguments) are testable on a machine that has neither a GPU nor vLLM.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

# LLaVA-1.5's single-turn format (llava-hf model card; vLLM's llava example uses the same).
LLAVA_PROMPT = "USER: <image>\n{instruction}\nASSISTANT:"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("auto", "cpu", "cuda")

Item = TypeVar("Item")
Result = TypeVar("Result")


def llava_prompt(instruction: str) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("the captioning instruction is empty; give the text the captioner should follow")
    return LLAVA_PROMPT.format(instruction=instruction.strip())


_ECHOED_ROLE = re.compile(r"^\s*(?:ASSISTANT|Assistant)\s*:\s*")


def clean_caption(text: str) -> str:
    """Drop a role tag the model echoed and collapse whitespace runs (sentences stay intact)."""
    return re.sub(r"\s+", " ", _ECHOED_ROLE.sub("", text)).strip()


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {list(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":  # half precision only where it is fast: on a GPU (LLaVA-1.5 and Llama-2 ship fp16)
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {['auto', *DTYPES]}")
    return DTYPES[dtype]


def eos_ids(generation_config, tokenizer) -> list[int]:
    """Every id that ends a generation (a generation config may list several)."""
    ids = generation_config.eos_token_id if generation_config.eos_token_id is not None else tokenizer.eos_token_id
    if ids is None:
        return []
    return [int(i) for i in ids] if isinstance(ids, (list, tuple)) else [int(ids)]


def generated_lengths(new_ids: torch.Tensor, eos: Sequence[int]) -> list[int]:
    """Tokens each row generated, its ending EOS included; padding after the EOS is not counted.

    new_ids: (B, T) the ids generate() appended after the prompt.
    """
    is_eos = torch.isin(new_ids, torch.tensor(list(eos), dtype=new_ids.dtype, device=new_ids.device))  # (B, T)
    first = is_eos.int().argmax(dim=1)  # (B,) index of the first EOS, 0 where there is none
    full = torch.full_like(first, new_ids.shape[1])
    return torch.where(is_eos.any(dim=1), first + 1, full).tolist()


def isolate_failures(
    items: Sequence[Item],
    batch_size: int,
    run_batch: Callable[[list[Item]], list[Result]],
    on_error: Callable[[int, Exception], Result],
) -> list[Result]:
    """Run ITEMS in batches; when a batch raises, run its items one at a time so only the item
    that fails becomes an error (on_error(index, exception)) and its batch-mates keep their result."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out: list[Result] = []
    for start in range(0, len(items), batch_size):
        batch = list(items[start : start + batch_size])
        if len(batch) > 1:
            try:
                out += run_batch(batch)
                continue
            except Exception:  # retried item by item below, where the failing item is known
                pass
        for offset, item in enumerate(batch):
            try:
                out += run_batch([item])
            except Exception as exc:  # this item's own failure: recorded, the run goes on
                out.append(on_error(start + offset, exc))
    return out


def describe_error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def vllm_sampling_kwargs(max_new_tokens: int, temperature: float = 0.0) -> dict:
    """SamplingParams arguments. Temperature 0 is greedy in vLLM, as do_sample=False in the hf backends."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    return {"max_tokens": max_new_tokens, "temperature": float(temperature)}
