"""TeSOConfig: every size, loss weight and ablation switch of the TeSO segmenter in one place;
TrainConfig: the training recipe's settings. Both torch-free, so configs validate without importing torch.

Defaults follow the paper (ECCV 2024, "Can Textual Semantics Mitigate Sounding Object Segmentation
Preference?") where it states a value, and docs/METHOD.md otherwise. The ablation switches are
the rows of the paper's Table 5; each comment says what the switch removes in this implementation.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any


# Settings added after checkpoints were first written, with the value that reproduces the code from
# before each existed: an older checkpoint resumes under that value (model/checkpoints.py).
ADDED_SETTINGS: dict[str, Any] = {"frozen_foundation_mode": "train", "infonce_symmetric": True,
                                  "dynamic_mask_threshold": "zero", "pmqs_latent_audio": False}


@dataclass
class TeSOConfig:
    # --- foundation model ---
    # Hub id or local folder of the segmentation foundation model; its weights stay frozen.
    foundation: str = "facebook/mask2former-swin-base-ade-semantic"
    num_labels: int = 1  # N_C: 1 for binary AVS (S4/MS3), 71 for AVSS (70 objects + background)
    # The paper freezes the pretrained foundation. False trains it too: only for a foundation without
    # pretrained weights (model/foundation.py's small random Mask2Former in the CPU demo).
    freeze_foundation: bool = True
    # How a frozen foundation runs while the rest trains: "eval" (as it was pretrained to be used:
    # Swin's stochastic depth and any dropout off) or "train" (they stay active in frozen layers, as
    # a plain nn.Module.train() leaves them). The paper does not say; eval is the usual practice.
    frozen_foundation_mode: str = "eval"

    # --- input features (cached by the pipeline; their encoders are frozen) ---
    audio_dim: int = 128  # VGGish embedding per second
    text_dim: int = 1024  # ImageBind text embedding of "This is a {cue}."; other encoders change this

    # --- SeDAM (semantic-driven audio modeling) ---
    d_model: int = 256  # width of text cues and latent audio features inside SeDAM
    n_latent: int = 8  # N_L latent audio features per second; a setting of ours, twice N_T = 4 cues
    n_sedam_layers: int = 4  # the paper stacks N = 4 crossmodal layers
    n_heads: int = 8  # heads of SeDAM's cross-attention; the dynamic mask averages over them
    audio_dropout: float = 0.1  # dropout on F_A; two dropout views give the InfoNCE positive pair

    # --- PMQS and adapters ---
    n_pmqs_heads: int = 1  # 1 is the paper's equation; more heads split the query width
    adapter_reduction: int = 4  # adapter bottleneck d -> d / 4 -> d

    # --- losses (Mask2Former's recipe plus the latent InfoNCE term) ---
    class_weight: float = 2.0
    mask_weight: float = 5.0  # binary cross-entropy on sampled points
    dice_weight: float = 5.0
    no_object_weight: float = 0.1  # down-weights the "no object" class in the classification loss
    train_num_points: int = 12544  # points sampled per mask for the mask losses (Mask2Former: 112 * 112)
    use_auxiliary_loss: bool = True  # deep supervision on every decoder layer, as Mask2Former trains
    infonce_weight: float = 1.0
    infonce_temperature: float = 0.1  # cosine similarities are divided by this before the softmax
    infonce_symmetric: bool = True  # both directions (view a -> b and b -> a, CLIP-style); False: a -> b only

    # --- ablation switches (paper Table 5) ---
    use_infonce: bool = True  # False: no InfoNCE term; latent audio features may collapse onto each other
    use_dynamic_mask: bool = True  # False: only padded cue slots are masked before PMQS
    # What a cue's score xi is compared with: "zero" (the paper: kept where xi > 0) or
    # "running_mean" (kept where xi exceeds the running mean of the scores; model/dynamic_mask.py
    # ScoreCentre says why: with "zero" the demo's mask kept every cue, or dropped nearly every one).
    dynamic_mask_threshold: str = "zero"
    # PMQS reads the latent audio F_AL beside the kept cues F_AT (the paper: F_AT only). With F_AT
    # only, every kept cue token is also the queries' only way to the audio, so dropping any cue
    # costs audio and the mask learns to keep everything (docs/METHOD.md, "Dynamic mask").
    pmqs_latent_audio: bool = False
    use_pmqs: bool = True  # False: every query gets the plain mean of the kept prompts (no attention)
    use_sedam: bool = True  # False: projected cues and latent audio are concatenated, no crossmodal layers
    use_text: bool = True  # False: latent audio features prompt the queries directly (no cues)
    use_audio: bool = True  # False: cues prompt the queries alone; with use_text False no prompt at all

    def __post_init__(self) -> None:
        positive = {
            "num_labels": self.num_labels,
            "audio_dim": self.audio_dim,
            "text_dim": self.text_dim,
            "d_model": self.d_model,
            "n_latent": self.n_latent,
            "n_sedam_layers": self.n_sedam_layers,
            "n_heads": self.n_heads,
            "n_pmqs_heads": self.n_pmqs_heads,
            "adapter_reduction": self.adapter_reduction,
            "train_num_points": self.train_num_points,
            "infonce_temperature": self.infonce_temperature,
        }
        problems = [f"{name} must be > 0, got {value}" for name, value in positive.items() if value <= 0]
        if self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.dynamic_mask_threshold not in ("zero", "running_mean"):
            problems.append(f"dynamic_mask_threshold must be 'zero' or 'running_mean', got {self.dynamic_mask_threshold!r}")
        if self.frozen_foundation_mode not in ("eval", "train"):
            problems.append(f"frozen_foundation_mode must be 'eval' or 'train', got {self.frozen_foundation_mode!r}")
        if not 0.0 <= self.audio_dropout < 1.0:
            problems.append(f"audio_dropout must be in [0, 1), got {self.audio_dropout}")
        if self.use_infonce and self.n_latent < 2:
            problems.append("use_infonce needs n_latent >= 2: InfoNCE contrasts latents against each other")
        weights = ("class_weight", "mask_weight", "dice_weight", "no_object_weight", "infonce_weight")
        problems += [f"{w} must be >= 0, got {getattr(self, w)}" for w in weights if getattr(self, w) < 0]
        if problems:
            raise ValueError("invalid TeSOConfig: " + "; ".join(problems))

    @property
    def uses_prompt(self) -> bool:
        """Whether any audio or text prompt reaches the mask queries (False is the paper's 'w/o both')."""
        return self.use_text or self.use_audio

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GAVSConfig:
    """GAVS (AAAI 2024, "Prompting Segmentation with Sound Is Generalizable Audio-Visual Source
    Localizer"), `train.model.architecture: gavs`: SAM prompted with sound (model/gavs.py).
    Defaults follow the official code (GeWu-Lab/Generalizable-Audio-Visual-Segmentation)."""

    foundation: str = "facebook/sam-vit-base"  # hub id or folder of a transformers SamModel; frozen
    num_labels: int = 1  # binary only: SAM's decoder gives one mask per prompt
    audio_dim: int = 128  # VGGish
    # The Correlation Adapter in SAM's image encoder: the last `tuned_blocks` ViT blocks get one
    # (official run scripts: --tune_v 9, adapters from block 9 of ViT-B's 12, so 3); 0 = none.
    tuned_blocks: int = 3
    adapter_dim: int = 128  # bottleneck width of every adapter (official: 128)
    decoder_adapters: bool = True  # an adapter on each two-way transformer block's MLP (official adapter_tf)
    prompt_hidden: int = 512  # the audio prompt's MLP: audio_dim -> 512 -> SAM's prompt width (official)
    audio_noise: bool = True  # training adds N(0, std(audio)^2) noise to each audio feature (official)
    # The papers freeze SAM. False trains it too: only for a SAM without pretrained weights (the
    # CPU testbed's small random SAM), as TeSO's demo does with its random Mask2Former.
    freeze_foundation: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.num_labels != 1:
            problems.append(f"GAVS segments sounding objects as one binary mask: num_labels must be 1, got {self.num_labels}")
        for name in ("audio_dim", "adapter_dim", "prompt_hidden"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.tuned_blocks < 0:
            problems.append(f"tuned_blocks must be >= 0, got {self.tuned_blocks}")
        if problems:
            raise ValueError("invalid GAVSConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": "gavs", **asdict(self)}


# `train.model.architecture` -> its settings; model/registry.py builds the model of each
ARCHITECTURES: dict[str, type] = {"teso": TeSOConfig, "gavs": GAVSConfig}


def model_settings(values: dict[str, Any]) -> TeSOConfig | GAVSConfig:
    """`train.model` (architecture: teso, the default, or gavs) -> its validated settings."""
    values = dict(values)
    name = values.pop("architecture", "teso")
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name](**values)


LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """The multiplier of every base learning rate before optimizer step `step` (0-based) of
    `total_steps`. A pure function of the step, so a resumed run needs no scheduler state."""
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainConfig:
    epochs: int = 60  # the paper trains for about 60 epochs
    batch_size: int = 8  # global micro-batch: summed over DDP ranks, per forward pass
    grad_accum: int = 1  # micro-batches per optimizer step; effective batch = batch_size * grad_accum
    lr_visual_adapters: float = 1e-4  # Swin adapters (paper)
    lr_other: float = 1e-3  # SeDAM, PMQS, other adapters, class head (paper)
    weight_decay: float = 0.05  # Mask2Former's AdamW setting
    # Learning-rate schedule over all optimizer steps: "constant" (what the paper states: fixed rates)
    # or "cosine" (linear warm-up over warmup_steps, then a cosine decay to lr_min_ratio of each rate).
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_min_ratio: float = 0.0
    num_workers: int = 2  # DataLoader worker processes per rank
    amp: bool = True  # float16 autocast + GradScaler; only used on CUDA
    seed: int = 0
    out_dir: str = "runs/teso"
    log_every: int = 10  # optimizer steps per metrics.jsonl step record
    image_size: int = 224  # recorded for provenance; the dataset does the resizing
    device: str = "auto"  # "auto" = cuda when available, else cpu; under torchrun cuda:LOCAL_RANK
    keep_checkpoints: int = 2  # newest epoch folders kept; 0 keeps all (best/ is separate)
    progress: bool = True  # the per-epoch progress bar (the pipeline sets it from run.progress)

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be > 0, got {getattr(self, name)}"
            for name in ("epochs", "batch_size", "grad_accum", "log_every", "image_size")
            if getattr(self, name) <= 0
        ]
        problems += [
            f"{name} must be >= 0, got {getattr(self, name)}"
            for name in ("num_workers", "keep_checkpoints", "weight_decay", "lr_visual_adapters", "lr_other",
                         "warmup_steps")
            if getattr(self, name) < 0
        ]
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            problems.append(f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            problems.append(f"device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))


@dataclass
class SmallSamConfig:
    """Widths of model/foundation.py's small random SAM (GAVS's foundation on CPU machines)."""

    image_size: int = 96  # SAM's input size: its absolute position embedding is built for it
    hidden_size: int = 64  # ViT width (ViT-B: 768)
    num_hidden_layers: int = 4  # ViT blocks (ViT-B: 12)
    num_attention_heads: int = 2
    window_size: int = 3  # in patches (ViT-B: 14)
    global_attn_indexes: list[int] = field(default_factory=lambda: [1, 3])
    prompt_dim: int = 32  # image-embedding and prompt width (SAM: 256)
    decoder_mlp_dim: int = 64  # SAM: 2048
    decoder_heads: int = 2  # SAM: 8
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.image_size % 16:
            problems.append(f"image_size must be a multiple of SAM's patch size 16, got {self.image_size}")
        if self.hidden_size % self.num_attention_heads or self.prompt_dim % (2 * self.decoder_heads):
            problems.append("hidden_size must divide by num_attention_heads, prompt_dim by 2 * decoder_heads")
        if any(i >= self.num_hidden_layers for i in self.global_attn_indexes):
            problems.append(f"global_attn_indexes {self.global_attn_indexes} name blocks beyond num_hidden_layers")
        if problems:
            raise ValueError("invalid SmallSamConfig: " + "; ".join(problems))


@dataclass
class SmallFoundationConfig:
    """Widths of model/foundation.py's small random Mask2Former (the CPU demo's foundation)."""

    image_size: int = 128  # Swin's nominal input size; other sizes work (windows are padded)
    embed_dim: int = 32  # Swin stage-1 width; later stages double it
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 1])
    num_heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    window_size: int = 4
    hidden_dim: int = 64  # pixel-decoder and query width (the real model: 256)
    feedforward_dim: int = 128
    encoder_layers: int = 2  # deformable-attention pixel-decoder layers
    decoder_layers: int = 4  # 1 prediction from the raw queries, then decoder_layers - 1 masked-attention layers
    num_attention_heads: int = 4
    num_queries: int = 16  # the real model: 100
    num_labels: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            problems.append("depths and num_heads need one entry per Swin stage (4)")
        if self.hidden_dim % self.num_attention_heads:
            problems.append(f"hidden_dim {self.hidden_dim} is not divisible by num_attention_heads {self.num_attention_heads}")
        if any(v <= 0 for v in (self.image_size, self.embed_dim, self.window_size, self.hidden_dim, self.num_queries)):
            problems.append("sizes must be > 0")
        if self.decoder_layers < 2:
            problems.append("decoder_layers must be >= 2 (the first prediction comes from the raw queries)")
        if problems:
            raise ValueError("invalid SmallFoundationConfig: " + "; ".join(problems))
