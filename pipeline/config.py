"""Experiment configuration: YAML files validated before any work starts.

A config is one YAML file (see `configs/`) plus `key.sub=value` overrides from the command line.
Validation uses pydantic models with `extra="forbid"`, so an unknown key, a wrong type or a
missing path ends the command with one readable message instead of a traceback mid-run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from model.config import ARCHITECTURES, SmallFoundationConfig, SmallSamConfig, TrainConfig
from pipeline.common.atomic import atomic_write_text
from pipeline.common.errors import UserError
from pipeline.common.names import check_name
from pipeline.common.registry import Registry
from pipeline.data.synth import SynthConfig
from pipeline.features.audio_conditions import DEFAULT_CONDITIONS, AudioCondition
from pipeline.features.backends import AUDIO_ENCODERS, TEXT_ENCODERS
from pipeline.text.backends import CAPTIONERS, REASONERS


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message lists every problem found."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(registry: Registry, name: str) -> str:
    """A backend name that `registry` knows (the message lists the known ones)."""
    if name not in registry:
        raise ValueError(f"unknown {registry.kind} {name!r}; known: {', '.join(registry.names())}")
    return name


class DatasetConfig(Section):
    name: str = "synth"  # dataset key in every cache row, so several datasets share one cache root
    root: Path = Path("demo/data")
    subsets: list[Literal["v1s", "v1m", "v2"]] | None = None  # None = all subsets
    splits: list[Literal["train", "val", "test"]] | None = None  # None = all splits
    v3: Literal["zero_shot", "1_shot", "3_shot", "5_shot"] | None = None  # AVS-V3 generalization split
    verify: Literal["full", "header"] = "full"  # full decodes every frame and mask; header only opens them

    @field_validator("name")
    @classmethod
    def _name_safe(cls, v: str) -> str:
        return check_name("dataset.name", v)  # a folder under cache.root


class CacheConfig(Section):
    root: Path = Path("cache")
    lock_timeout_s: float = 3600.0  # a second run waits this long for the first to finish


class SynthSection(Section):
    out: Path = Path("demo/data")
    seed: int = 0
    size: int = Field(160, ge=32, le=1024)
    videos: dict[Literal["v1s", "v1m", "v2"], dict[Literal["train", "val", "test"], int]] = Field(
        default_factory=lambda: {
            "v1s": {"train": 60, "val": 15, "test": 15},
            "v1m": {"train": 40, "val": 10, "test": 10},
            "v2": {"train": 100, "val": 25, "test": 25},
        }
    )
    # How often an object shows its drawn "sounding" state (pipeline/data/synth/drawing.py): the gap between the
    # two is how much a frame alone tells about what is sounding.
    state_if_sounding: float = Field(0.8, ge=0, le=1)
    state_if_silent: float = Field(0.15, ge=0, le=1)

    def generator_config(self):
        """The pipeline.data.synth.SynthConfig these settings describe."""
        return SynthConfig(
            seed=self.seed, size=self.size, videos=self.videos,
            state_if_sounding=self.state_if_sounding, state_if_silent=self.state_if_silent,
        )


class RunConfig(Section):
    workers: int = Field(2, ge=1)  # threads for I/O-bound checks and task runner width
    progress: bool = True
    # Where stage shards run (flows/sharding.py): threads here, or a Dask / Ray cluster (the
    # `cluster` extra). Without an address a local cluster of `workers` workers is started per flow.
    task_runner: Literal["thread", "dask", "ray"] = "thread"
    dask_address: str | None = None  # e.g. tcp://scheduler:8786, an existing Dask cluster
    dask_processes: bool = True  # local Dask cluster: one process per worker (False: threads in this process)
    ray_address: str | None = None  # e.g. ray://head:10001 or "auto", an existing Ray cluster
    # `teso demo`: runs trained at once, each in its own process. A small model's training step is
    # bound by Python overhead and keeps about one core busy, so on 2 cores two runs at once take
    # little longer than one.
    parallel_trainings: int = Field(1, ge=1)


class VLLMSection(Section):
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs one model is split over
    max_model_len: int = 4096
    max_num_seqs: int = 64  # concurrent sequences in vLLM's scheduler
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    limit_mm_per_prompt: dict[str, int] = Field(default_factory=lambda: {"image": 1})

    def engine_kwargs(self, multimodal: bool = False) -> dict:
        """Arguments for the vLLM backends' engine; multi-modal limits only for captioning."""
        out = self.model_dump(exclude={"limit_mm_per_prompt"})
        return out | {"limit_mm_per_prompt": self.limit_mm_per_prompt} if multimodal else out


class CaptionsConfig(Section):
    backend: str = "reference"  # pipeline.text.backends.CAPTIONERS; reference = the dataset's own descriptions
    model: str = "llava-hf/llava-1.5-7b-hf"  # hub id or local folder (hf, vllm)
    prompt: str = "caption_dense"  # file prompts/{prompt}.txt
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    shards: int = Field(1, ge=1)  # parallel model copies; 1 per GPU is the sensible maximum
    vllm: VLLMSection = Field(default_factory=VLLMSection)

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, v: str) -> str:
        return _registered(CAPTIONERS, v)


class CuesConfig(Section):
    backend: str = "nouns"  # pipeline.text.backends.REASONERS; nouns = the paper's NLTK noun-parser baseline (TeSO-n)
    model: str = "meta-llama/Llama-2-7b-chat-hf"
    template: str = "cot_fewshot"  # file prompts/{template}.txt
    max_cues: int = Field(4, ge=1)  # N_T in the paper's code
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(8, ge=1)
    shards: int = Field(1, ge=1)
    structured: bool = False  # JSON-schema constrained output where the backend supports it (vllm)
    vllm: VLLMSection = Field(default_factory=VLLMSection)

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, v: str) -> str:
        return _registered(REASONERS, v)


class AudioFeaturesConfig(Section):
    encoder: str = "logmel"  # pipeline.features.backends.AUDIO_ENCODERS; logmel needs no weights (demo), vggish is the paper's
    weights: Path | None = None  # vggish-10086976.pth
    allow_random_weights: bool = False  # only for pipeline tests: random VGGish, recorded in provenance
    seed: int = 0
    postprocess: bool = False  # AudioSet PCA; AVSBench feeds the raw embedding
    pca_params: Path | None = None
    batch_size: int = Field(64, ge=1)  # 0.96 s examples per forward
    videos_per_batch: int = Field(32, ge=1)  # clips per cache write
    conditions: list[AudioCondition] = Field(default_factory=lambda: list(DEFAULT_CONDITIONS))

    @field_validator("encoder")
    @classmethod
    def _encoder_known(cls, v: str) -> str:
        return _registered(AUDIO_ENCODERS, v)

    @field_validator("conditions")
    @classmethod
    def _names_unique(cls, v: list[AudioCondition]) -> list[AudioCondition]:
        names = [c.name for c in v]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"audio conditions need distinct names, at least one; got {names}")
        return v

    def condition(self, name: str) -> AudioCondition:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(f"audio condition {name!r} is not configured (features.audio.conditions: {[c.name for c in self.conditions]})")


class TextFeaturesConfig(Section):
    encoder: str = "sentence-transformers"  # pipeline.features.backends.TEXT_ENCODERS
    path: Path | None = None  # model folder or weights file; None = the bundled MiniLM (sentence-transformers)
    tokenizer: Path | None = None  # imagebind: CLIP BPE tokenizer folder
    template: str = "This is a {cue}."
    n_t: int = Field(4, ge=1)  # cue slots per frame (N_T)
    batch_size: int = Field(64, ge=1)
    frames_per_batch: int = Field(256, ge=1)

    @field_validator("encoder")
    @classmethod
    def _encoder_known(cls, v: str) -> str:
        return _registered(TEXT_ENCODERS, v)


class FeaturesConfig(Section):
    device: Literal["cpu", "cuda"] = "cpu"
    audio: AudioFeaturesConfig = Field(default_factory=AudioFeaturesConfig)
    text: TextFeaturesConfig = Field(default_factory=TextFeaturesConfig)


def _check_dataclass(cls, values: dict) -> dict:
    """Validate a dict against one of model/config.py's dataclasses: unknown keys, each value's type
    (pydantic on the dataclass's annotations: "abc" or 2.5 for an int is an error, 2.0 becomes 2),
    then the dataclass's own checks. Returns the values as converted."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        obj = TypeAdapter(cls).validate_python(values)  # also runs __post_init__'s checks
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or cls.__name__}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()]
        raise ValueError("; ".join(problems)) from None
    return {name: getattr(obj, name) for name in values}


class FoundationSection(Section):
    """`teso foundation`: build model/foundation.py's small random Mask2Former for machines without
    foundation weights (the CPU demo); point `train.model.foundation` at `out`."""

    out: Path = Path("demo/foundation")
    small: dict[str, Any] = Field(default_factory=dict)  # SmallFoundationConfig fields (model/config.py)
    # GAVS's foundation on the same machines: a small random SAM (SmallSamConfig fields)
    sam_out: Path = Path("demo/foundation_sam")
    sam_small: dict[str, Any] = Field(default_factory=dict)

    @field_validator("small")
    @classmethod
    def _small_fields(cls, v: dict) -> dict:
        return _check_dataclass(SmallFoundationConfig, v)

    @field_validator("sam_small")
    @classmethod
    def _sam_fields(cls, v: dict) -> dict:
        return _check_dataclass(SmallSamConfig, v)


class TrainSection(Section):
    # TeSOConfig fields (model/config.py): foundation, num_labels, n_latent, ablation switches, ...
    # text_dim is filled from the cached text features when omitted. `architecture: gavs` takes
    # GAVSConfig's fields instead (SAM prompted with sound, model/gavs.py).
    model: dict[str, Any] = Field(default_factory=dict)
    # TrainConfig fields (model/config.py): epochs, batch_size, grad_accum, lrs, seed, device, ...
    recipe: dict[str, Any] = Field(default_factory=dict)
    out_dir: Path = Path("runs/demo")
    image_size: int = Field(224, ge=32)
    train_split: Literal["train", "val", "test"] = "train"
    val_split: Literal["train", "val", "test"] | None = "val"
    audio_condition: str = "normal"  # audio feature variant used for training
    select_metric: Literal["miou", "fscore"] = "miou"
    threshold: float = Field(0.4, gt=0, lt=1)  # binarisation for mIoU (GAVS/TeSO code: 0.4; AVSBench: 0.5)
    augment: bool = True
    max_val_videos: int | None = None  # cap validation cost per epoch; None = all

    @field_validator("model")
    @classmethod
    def _model_fields(cls, v: dict) -> dict:
        name = v.get("architecture", "teso")
        if name not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")
        values = {k: x for k, x in v.items() if k != "architecture"}
        probe = ({"text_dim": 1} if name == "teso" else {}) | values  # text_dim may come from the feature store later
        checked = _check_dataclass(ARCHITECTURES[name], probe)
        return {k: checked[k] if k in checked else v[k] for k in v}

    @field_validator("recipe")
    @classmethod
    def _recipe_fields(cls, v: dict) -> dict:
        return _check_dataclass(TrainConfig, v)


class EvalSection(Section):
    split: Literal["train", "val", "test"] = "test"
    conditions: list[str] | None = None  # names in features.audio.conditions; None = all of them
    # What the relative drops are measured against (paper Table 4), and the condition whose pass
    # gives the cue-recognition scores and the grids.
    reference_condition: str = "normal"
    checkpoint: Literal["best", "last"] = "best"
    threshold: float = Field(0.4, gt=0, lt=1)  # mIoU binarisation (GAVS/TeSO code 0.4; AVSBench 0.5)
    grids: int = Field(8, ge=0)  # qualitative PNG grids written
    out_dir: Path | None = None  # default: {train.out_dir}/eval
    cue_filter: bool = False  # Table 6 "baseline filter": keep only predicted classes the cues name (AVSS)


class ReportSection(Section):
    """`teso report` / `teso demo`: which runs (names in `runs`) the report compares, first = main."""

    out_dir: Path = Path("reports/demo")
    runs: list[str] | None = None  # None = every run of `runs`, in order (no runs: the config itself)
    grids: int = Field(4, ge=0)  # qualitative grids of the main run shown


class ReproduceSection(Section):
    """`teso reproduce` / `make reproduce`: every run of the report over several seeds, and the
    paper's claims checked on the numbers (pipeline/evaluation/claims.py)."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # train.recipe.seed of each repetition
    out_dir: Path = Path("reports/demo/reproduce")
    # Which run plays which part in the claims; a role whose run is not in `runs` is reported "not run".
    roles: dict[Literal["teso", "no_audio", "no_text", "nouns"], str] = Field(
        default_factory=lambda: {"teso": "teso", "no_audio": "no_audio", "no_text": "no_text", "nouns": "teso_n"}
    )

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


class Config(Section):
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    synth: SynthSection = Field(default_factory=SynthSection)
    run: RunConfig = Field(default_factory=RunConfig)
    captions: CaptionsConfig = Field(default_factory=CaptionsConfig)
    cues: CuesConfig = Field(default_factory=CuesConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    foundation: FoundationSection = Field(default_factory=FoundationSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    report: ReportSection = Field(default_factory=ReportSection)
    reproduce: ReproduceSection = Field(default_factory=ReproduceSection)
    # Named variants of this experiment (paper Table 5 ablations, cue variants): each is a list of
    # `key.sub=value` overrides applied on top of this config, trained into {train.out_dir}/{name}.
    runs: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _conditions_known(self) -> "Config":
        known = [c.name for c in self.features.audio.conditions]
        if self.eval.conditions is None:
            self.eval.conditions = list(known)
        problems = [f"train.audio_condition {self.train.audio_condition!r}"] if self.train.audio_condition not in known else []
        problems += [f"eval.conditions entry {n!r}" for n in self.eval.conditions if n not in known]
        if problems:
            raise ValueError(f"{', '.join(problems)}: not in features.audio.conditions {known}")
        if self.eval.reference_condition not in self.eval.conditions:
            raise ValueError(f"eval.reference_condition {self.eval.reference_condition!r} is not in eval.conditions {self.eval.conditions}")
        return self

    @model_validator(mode="after")
    def _sam_fits_the_images(self) -> "Config":
        """GAVS on this config's own small SAM: SAM's position embedding is built for one input
        size, so train.image_size must be it (otherwise every batch fails in training)."""
        model = self.train.model
        own = model.get("architecture") == "gavs" and Path(str(model.get("foundation", ""))).resolve() == Path(self.foundation.sam_out).resolve()
        size = SmallSamConfig(**self.foundation.sam_small).image_size
        if own and size != self.train.image_size:
            raise ValueError(f"train.image_size {self.train.image_size} differs from foundation.sam_small.image_size {size}: "
                             f"the small SAM at {self.foundation.sam_out} takes {size}x{size} images")
        return self

    @model_validator(mode="after")
    def _runs_valid(self) -> "Config":
        for name in self.runs:
            check_name("run name", name)  # a folder under train.out_dir
        missing = [r for r in self.report.runs or [] if r not in self.runs]
        if missing:
            raise ValueError(f"report.runs names runs that are not in runs: {missing}")
        return self


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """`["train.lr=1e-3", "dataset.subsets=[v1s]"]` -> nested dict; values are parsed as YAML."""
    tree: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise ConfigError(f"override '{item}': the value is not valid YAML ({detail})") from None
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key")
        elif not e["loc"]:  # a whole-config check: the input is the whole config, not worth echoing
            lines.append(f"  - {e['msg']}")
        else:
            lines.append(f"  - {where}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply overrides, validate. Raises ConfigError."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path} must be a mapping of sections")
    if overrides:
        tree = _merge(tree, parse_overrides(overrides))
        source += " + overrides"
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def with_overrides(cfg: Config, overrides: list[str], source: str, **replace: Any) -> Config:
    """`cfg` with `key.sub=value` overrides applied (and top-level sections replaced whole),
    validated again; `source` names them in errors."""
    tree = _merge(cfg.model_dump(mode="json"), parse_overrides(overrides)) | replace
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def run_config(cfg: Config, name: str) -> Config:
    """The config of run `name`: its overrides on top of `cfg`, writing to {train.out_dir}/{name}.
    A run's config is one experiment: it has no runs of its own."""
    if name not in cfg.runs:
        raise ConfigError(f"unknown run {name!r}; this config defines: {sorted(cfg.runs) or 'none'}")
    overrides = list(cfg.runs[name]) + [f"train.out_dir={Path(cfg.train.out_dir) / name}", "report.runs=null"]
    return with_overrides(cfg, overrides, f"run {name}", runs={})


def seed_config(cfg: Config, seed: int) -> Config:
    """One repetition of a run for `teso reproduce`: train.recipe.seed = seed (model init, data order
    and augmentation), trained into {parent of train.out_dir}/seed{seed}/{run name}."""
    out = Path(cfg.train.out_dir)
    return with_overrides(cfg, [f"train.recipe.seed={seed}", f"train.out_dir={out.parent / f'seed{seed}' / out.name}"], f"seed {seed}")


def report_runs(cfg: Config) -> list[tuple[str, Config]]:
    """(name, config) of every run the report and the demo cover, the main one first."""
    if not cfg.runs:
        return [(Path(cfg.train.out_dir).name, cfg)]
    names = cfg.report.runs if cfg.report.runs is not None else list(cfg.runs)
    return [(name, run_config(cfg, name)) for name in names]


def require_paths(cfg: Config, dotted_keys: list[str]) -> None:
    """Fail before any work when an input path a command needs does not exist."""
    missing = []
    for dotted in dotted_keys:
        value: Any = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        if value is not None and not Path(value).exists():
            missing.append(f"  - {dotted}: path does not exist: {value}")
    if missing:
        raise ConfigError("invalid config:\n" + "\n".join(missing))


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_effective_config(cfg: Config, folder: Path, name: str = "config.yaml") -> Path:
    """Write the effective config beside an output, atomically, so every output says how it was made."""
    return atomic_write_text(Path(folder) / name, config_to_yaml(cfg))
