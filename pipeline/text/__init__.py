"""Text cues: captioning backends (LLaVA-1.5, reference descriptions), reasoning backends (LLaMA-2
chat), prompt templates, and the parsers that turn a model's answer into cue lists (including the
noun-parser baseline). Knows nothing about caches."""
