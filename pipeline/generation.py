"""What the transformers and vLLM backends of the text-cue stage share: dtype and device choice,
LLaVA-1.5 prompt building, output clean-up, and vLLM's sampling settings."""
from __future__ import annotations

import re

import torch

LLAVA_PROMPT = "USER: <image>\n{instruction}\nASSISTANT:"


def llava_prompt(instruction: str) -> str:
    return LLAVA_PROMPT.format(instruction=instruction.strip())


def clean_output(text: str) -> str:
    """Strip an echoed role tag and collapse whitespace runs (keeps sentences intact)."""
    text = text.strip()
    text = re.sub(r"^(ASSISTANT|Assistant)\s*:\s*", "", text)
    return re.sub(r"\s+", " ", text).strip()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":  # half precision only where it is fast: on a GPU
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def vllm_sampling_kwargs(max_new_tokens: int, temperature: float = 0.0) -> dict:
    """Greedy by default, as the hf backend (temperature 0 is greedy in vLLM)."""
    return {"max_tokens": max_new_tokens, "temperature": temperature}
