"""Tiny random LLaVA-1.5 and Llama-2-chat models with tokenizers built offline, for machines
without the real weights: the tests and the captioning benchmark run the hf backends on them.

Each builder writes a folder with `save_pretrained`, so the backends load it through the same
`from_pretrained` path the real hub ids take (`llava-hf/llava-1.5-7b-hf`,
`meta-llama/Llama-2-7b-chat-hf`). The tokenizer is a word-level vocabulary of prompt, caption and
chat-format words plus LLaVA's `<image>` token, so decoded outputs are readable words.

Weights are drawn wider than the transformers default (initializer_range 0.02): at that scale a
2-layer random model answers every input with the same token, and a test comparing batched with
one-at-a-time generation could not tell a padding bug from a constant model.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
# Pieces of the LLaVA-1.5 and Llama-2 chat formats as the Whitespace pre-tokenizer splits them
# ("[/INST]" -> "[/", "INST", "]"), then caption and cue words.
FORMAT_PIECES = ["USER", "ASSISTANT", ":", "[", "[/", "]", "INST", "<<", "<</", ">>", "SYS", ",", ".", "?", "Answer"]
WORDS = """a an the this is are of in on at with and or there image picture scene describe detail detailed
Describe Which objects object sounding sound making could can be playing barking singing ringing
dog cat man woman child baby guitar piano drum violin car truck bell bird siren engine crowd
left right top bottom middle background red blue green small large""".split()

IMAGE_SIZE, PATCH_SIZE = 32, 8  # (32 / 8)^2 = 16 image tokens per frame
INIT_RANGE = 0.5


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
    for token in SPECIAL + FORMAT_PIECES + WORDS:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


# Llama-2-chat's chat template (tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf): the system
# message goes inside the first [INST] block between <<SYS>> tags; each user turn starts with BOS.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)


def _llama_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048, initializer_range=INIT_RANGE,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def make_tiny_llava(directory: str | Path, seed: int = 0) -> str:
    """A random LLaVA-1.5 (CLIP ViT + projector + Llama) with its processor in DIRECTORY; returns the path."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,  # the CLS token, dropped
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32, initializer_range=INIT_RANGE,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=_llama_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_layer=-2, vision_feature_select_strategy="default",  # LLaVA-1.5's choices
    )
    path = Path(directory)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def make_tiny_llama_chat(directory: str | Path, seed: int = 0) -> str:
    """A random Llama with a Llama-2-chat tokenizer (chat template included) in DIRECTORY; returns the path."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    path = Path(directory)
    LlamaForCausalLM(_llama_config(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
