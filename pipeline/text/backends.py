"""The captioning and reasoning backends by name: how each is built from the config, what
identifies its output in a cache fingerprint, and (reasoners) how its answers become cues.

`captions.backend` and `cues.backend` are checked against CAPTIONERS and REASONERS when the config
is loaded. To add a backend, write its class (pipeline.text.captioners / reasoners), subclass
CaptionerBackend or ReasonerBackend here and register it.

The model classes are imported inside `build`: they pull in torch and transformers (and vLLM),
which a config check or `teso sql` should not pay for.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common.identity import model_identity
from pipeline.common.registry import Registry
from pipeline.text import noun_cues
from pipeline.text.cue_parser import parse_cues, parse_structured
from pipeline.text.prompts import PromptTemplate, load_template
from pipeline.text.reference_captions import DESCRIPTIONS_FILE, ReferenceCaptioner

if TYPE_CHECKING:
    from pipeline.config import Config


# -- captioners -------------------------------------------------------------------------------
class CaptionerBackend:
    """A captioning backend: `build` loads it, the rest says what its captions depend on."""

    name: str
    reads_images = True  # False: the backend never looks at the frames (reference descriptions)

    def build(self, cfg: Config) -> Any:
        raise NotImplementedError

    def model_inputs(self, cfg: Config) -> dict:
        return model_identity(cfg.captions.model)

    def model_name(self, cfg: Config) -> str:
        return cfg.captions.model

    def prompt(self, cfg: Config) -> PromptTemplate | None:
        return load_template(cfg.captions.prompt)

    def gen_params(self, cfg: Config) -> dict:
        c = cfg.captions
        return {"max_new_tokens": c.max_new_tokens, "do_sample": False, "dtype": c.dtype}

    def identity(self, cfg: Config) -> dict:
        """The captions table's fingerprint inputs besides the stage version."""
        prompt = self.prompt(cfg)
        return {"backend": self.name, **self.model_inputs(cfg), "prompt_sha": prompt.sha256 if prompt else None,
                "gen_params": self.gen_params(cfg)}


class ReferenceCaptions(CaptionerBackend):
    """The dataset's own scene descriptions, for machines without captioning weights."""

    name = "reference"
    reads_images = False

    def build(self, cfg: Config) -> ReferenceCaptioner:
        return ReferenceCaptioner(cfg.dataset.root)

    def model_inputs(self, cfg: Config) -> dict:
        # The file is identified by where it is, not by its content: it grows when videos are added,
        # and a frame's caption is its own line, so adding videos must not re-caption the old ones.
        # (An edited description of an existing frame is therefore not noticed; clear the table.)
        return {"descriptions": str((Path(cfg.dataset.root) / DESCRIPTIONS_FILE).resolve()), "identity": "path"}

    def model_name(self, cfg: Config) -> str:
        return f"reference:{DESCRIPTIONS_FILE}"

    def prompt(self, cfg: Config) -> None:
        return None

    def gen_params(self, cfg: Config) -> dict:
        return {}


class HFLlava(CaptionerBackend):
    """LLaVA-1.5 through transformers."""

    name = "hf"

    def build(self, cfg: Config):
        from pipeline.text.captioners import HFLlavaCaptioner  # torch + transformers

        c = cfg.captions
        return HFLlavaCaptioner(c.model, instruction=self.prompt(cfg).text.strip(), dtype=c.dtype, device=c.device,
                                max_new_tokens=c.max_new_tokens, batch_size=c.batch_size)


class VLLMLlava(CaptionerBackend):
    """LLaVA-1.5 through vLLM's offline engine (GPU)."""

    name = "vllm"

    def build(self, cfg: Config):
        from pipeline.text.captioners import VLLMCaptioner  # torch; vLLM is the optional gpu extra

        c = cfg.captions
        return VLLMCaptioner(c.model, instruction=self.prompt(cfg).text.strip(), dtype=c.dtype,
                             max_new_tokens=c.max_new_tokens, **c.vllm.engine_kwargs(multimodal=True))

    def gen_params(self, cfg: Config) -> dict:
        return super().gen_params(cfg) | {"vllm": cfg.captions.vllm.model_dump()}


CAPTIONERS: Registry[CaptionerBackend] = Registry("captions backend")
for _backend in (ReferenceCaptions(), HFLlava(), VLLMLlava()):
    CAPTIONERS.register(_backend.name, _backend)


# -- reasoners --------------------------------------------------------------------------------
def cue_row(cues: list[str] | None, raw: str | None, n_tokens: int | None, status: str, error: str | None) -> dict:
    """One frame's outcome as the cues stage stores it."""
    return {"cues": cues, "raw": raw, "n_tokens": n_tokens, "status": status, "error": error}


def _failed(exc: Exception) -> dict:
    return cue_row(None, None, None, "error", f"{type(exc).__name__}: {exc}")


class ReasonerBackend:
    """A cue backend: `build` loads it, `cues` turns captions into cue rows, the rest says what its
    cues depend on."""

    name: str

    def build(self, cfg: Config) -> Any:
        raise NotImplementedError

    def model_inputs(self, cfg: Config) -> Any:
        return model_identity(cfg.cues.model)

    def model_name(self, cfg: Config) -> str:
        return cfg.cues.model

    def template(self, cfg: Config) -> tuple[str, str]:
        """(name, sha256) of what turns a caption into a prompt."""
        tpl = load_template(cfg.cues.template)
        return tpl.name, tpl.sha256

    def gen_params(self, cfg: Config) -> dict:
        c = cfg.cues
        return {"max_cues": c.max_cues, "max_new_tokens": c.max_new_tokens, "do_sample": False, "dtype": c.dtype,
                "structured": c.structured}

    def identity(self, cfg: Config) -> dict:
        """The cues table's fingerprint inputs besides the stage version and the captions' fingerprint."""
        name, sha = self.template(cfg)
        return {"backend": self.name, "model": self.model_inputs(cfg), "template": name, "template_sha": sha,
                "gen_params": self.gen_params(cfg)}

    def cues(self, worker: Any, cfg: Config, captions: list[str]) -> list[dict]:
        """One cue row per caption; a failure of the model on the batch becomes error rows."""
        c = cfg.cues
        try:
            results = worker.reason(load_template(c.template), captions)
        except Exception as exc:  # a model failure on this batch is recorded per row; the stage goes on
            return [_failed(exc)] * len(captions)
        out = []
        for res in results:
            if res.status != "ok":
                out.append(cue_row(None, res.raw_text, res.n_tokens, "error", res.error))
                continue
            parse = parse_structured if c.structured else parse_cues
            parsed = parse(res.raw_text, max_cues=c.max_cues)
            out.append(cue_row(parsed.cues if parsed.status == "ok" else None, res.raw_text, res.n_tokens, parsed.status, parsed.error))
        return out


class NounParser(ReasonerBackend):
    """The paper's noun-parser baseline (TeSO-n): no LLM, the caption's object nouns are the cues."""

    name = "nouns"

    def build(self, cfg: Config) -> None:
        noun_cues.ensure_wordnet()
        return None

    def model_inputs(self, cfg: Config) -> str:
        return "nltk-wordnet"

    def model_name(self, cfg: Config) -> str:
        return "nltk-wordnet"

    def template(self, cfg: Config) -> tuple[str, str]:
        # The baseline's 'template' is its code: changing the parser recomputes its cues.
        return "noun_parser", hashlib.sha256(Path(noun_cues.__file__).read_bytes()).hexdigest()

    def gen_params(self, cfg: Config) -> dict:
        return {"max_cues": cfg.cues.max_cues}

    def cues(self, worker: None, cfg: Config, captions: list[str]) -> list[dict]:
        out = []
        for caption in captions:
            try:
                out.append(cue_row(noun_cues.noun_cues(caption, max_cues=cfg.cues.max_cues), None, None, "ok", None))
            except Exception as exc:  # one odd caption must not stop the batch
                out.append(_failed(exc))
        return out


class RuleCoT(ReasonerBackend):
    """A rule-based stand-in for the LLM's few-shot chain of thought, for machines without LLM
    weights: it writes a CoT answer per caption (pipeline.text.rule_reasoner), parsed like an LLM's."""

    name = "cot_rules"

    def build(self, cfg: Config):
        from pipeline.text.rule_reasoner import RuleCoTReasoner

        noun_cues.ensure_wordnet()  # its objects are the noun parser's
        return RuleCoTReasoner()

    def model_inputs(self, cfg: Config) -> str:
        return "rule-cot"

    def model_name(self, cfg: Config) -> str:
        return "rule-cot"

    def template(self, cfg: Config) -> tuple[str, str]:
        # The rules are the model and the prompt, and they find objects with the noun parser's
        # helpers: changing either file recomputes the cues.
        digest = hashlib.sha256()
        for name in ("rule_reasoner.py", "noun_cues.py"):
            digest.update((Path(__file__).parent / name).read_bytes())
        return "cot_rules", digest.hexdigest()

    def gen_params(self, cfg: Config) -> dict:
        return {"max_cues": cfg.cues.max_cues}


class HFChat(ReasonerBackend):
    """A chat LLM (LLaMA-2-chat) through transformers."""

    name = "hf"

    def build(self, cfg: Config):
        from pipeline.text.reasoners import HFChatReasoner  # torch + transformers

        c = cfg.cues
        return HFChatReasoner(c.model, dtype=c.dtype, device=c.device, max_new_tokens=c.max_new_tokens, batch_size=c.batch_size)


class VLLMChat(ReasonerBackend):
    """A chat LLM through vLLM's offline engine (GPU), optionally with JSON-schema constrained output."""

    name = "vllm"

    def build(self, cfg: Config):
        from pipeline.text.reasoners import VLLMChatReasoner  # torch; vLLM is the optional gpu extra

        c = cfg.cues
        return VLLMChatReasoner(c.model, dtype=c.dtype, max_new_tokens=c.max_new_tokens, structured=c.structured,
                                **c.vllm.engine_kwargs())

    def gen_params(self, cfg: Config) -> dict:
        return super().gen_params(cfg) | {"vllm": cfg.cues.vllm.model_dump()}


REASONERS: Registry[ReasonerBackend] = Registry("cues backend")
for _backend in (NounParser(), RuleCoT(), HFChat(), VLLMChat()):
    REASONERS.register(_backend.name, _backend)
