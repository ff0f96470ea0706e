"""Frames, masks and cached features as training tensors (docs/METHOD.md; pipeline/data/layout.py).

One item is one frame (AVSBench samples one frame per second) with everything the segmenter reads:
the normalised image, its class map, the audio feature of that second and the frame's text cues.
The cached features come through two lookups so this module needs no storage library:
`audio_lookup(audio_key) -> (T, 128)` VGGish rows of a video, one per second, and
`text_lookup(text_key) -> ((N_T, d) cue embeddings, (N_T,) bool validity)`.

Training augmentation (random resized crop, horizontal flip) is drawn from a numpy generator seeded
by (seed, epoch, index), so an item looks the same whatever worker loads it and a resumed run sees
the same images as an uninterrupted one. Only PIL and numpy are used: torchvision is not installable
next to the CPU torch build.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

# Mask2Former's image processor normalises with the ImageNet statistics after scaling to [0, 1].
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

CROP_SCALE = (0.8, 1.0)  # fraction of the frame's area kept by the random resized crop
CROP_RATIO = (3 / 4, 4 / 3)  # aspect-ratio range of the crop, torchvision's RandomResizedCrop default

AudioLookup = Callable[[Hashable], np.ndarray]
TextLookup = Callable[[Hashable], tuple[np.ndarray, np.ndarray]]


@dataclass
class FrameSample:
    uid: str  # video id
    subset: str  # v1s, v1m, v2, ...
    frame: int  # index of the frame, which is also its second (1 fps)
    frame_path: str
    mask_path: str | None  # `labels_semantic` gray PNG: pixel value = class index, 0 = background
    has_mask: bool  # False for the frames AVSBench leaves unlabelled (v1s train: all but the first)
    audio_key: Hashable  # handed to audio_lookup
    text_key: Hashable  # handed to text_lookup
    class_names: tuple[str, ...] | None = None  # ground-truth sounding classes, when known


def build_training_samples(samples: Sequence[FrameSample]) -> list[FrameSample]:
    """The frames the loss can use: those with a ground-truth mask.

    AVSBench v1s labels only the first of the five frames of a training video, and its training
    uses only that frame; v1m and v2 label every frame, so they pass through unchanged.
    """
    kept = [s for s in samples if s.has_mask]
    if not kept:
        raise ValueError(f"none of the {len(samples)} samples has a mask; nothing to train on")
    return kept


class AVSFrameDataset(Dataset):
    """Frames with their masks, audio rows and text cues, as tensors (see `__getitem__`)."""

    def __init__(
        self,
        samples: Sequence[FrameSample],
        audio_lookup: AudioLookup,
        text_lookup: TextLookup,
        image_size: int = 224,
        train: bool = False,
        augment: bool = True,
        num_labels: int = 1,
        seed: int = 0,
    ):
        if image_size <= 0 or num_labels <= 0:
            raise ValueError(f"image_size and num_labels must be > 0, got {image_size} and {num_labels}")
        unlabelled = [f"{s.uid}/{s.frame}" for s in samples if s.has_mask and s.mask_path is None]
        if unlabelled:
            raise ValueError(f"samples with has_mask=True but no mask_path: {unlabelled[:5]}")
        self.samples = list(samples)
        self.audio_lookup = audio_lookup
        self.text_lookup = text_lookup
        self.image_size = image_size
        self.augment = train and augment
        self.num_labels = num_labels
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of `epoch`; the trainer calls this before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """pixel_values (3, S, S) float32; mask (S, S) int64 class map (0/1 when num_labels == 1);
        has_mask bool; audio (128,) float32; cues (N_T, d) float32; cue_valid (N_T,) bool; and the
        sample's uid, subset, frame."""
        sample = self.samples[index]
        image = Image.open(sample.frame_path).convert("RGB")
        mask = self._load_mask(sample, image.size)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            box = random_crop_box(image.size, rng)
            flip = bool(rng.random() < 0.5)
        else:
            box, flip = (0, 0, *image.size), False
        size = (self.image_size, self.image_size)
        image = image.resize(size, Image.BILINEAR, box=box)
        mask = mask.resize(size, Image.NEAREST, box=box)
        if flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
            mask = mask.transpose(Image.FLIP_LEFT_RIGHT)

        pixels = (np.asarray(image, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # (S, S, 3)
        labels = np.asarray(mask, dtype=np.int64)  # (S, S)
        if self.num_labels == 1:
            labels = (labels > 0).astype(np.int64)
        elif labels.max() >= self.num_labels:
            raise ValueError(
                f"{sample.mask_path}: class index {labels.max()} is outside [0, {self.num_labels})"
            )
        cues, cue_valid = self._cues(sample)
        return {
            "pixel_values": torch.from_numpy(pixels.transpose(2, 0, 1).copy()),  # (3, S, S)
            "mask": torch.from_numpy(labels),  # (S, S)
            "has_mask": sample.has_mask,
            "audio": torch.from_numpy(self._audio_row(sample)),  # (128,)
            "cues": torch.from_numpy(cues),  # (N_T, d)
            "cue_valid": torch.from_numpy(cue_valid),  # (N_T,)
            "uid": sample.uid,
            "subset": sample.subset,
            "frame": sample.frame,
        }

    def _load_mask(self, sample: FrameSample, frame_size: tuple[int, int]) -> Image.Image:
        if not sample.has_mask:
            return Image.new("L", frame_size, 0)
        mask = Image.open(sample.mask_path)
        if mask.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(
                f"{sample.mask_path}: a mask must be a single-channel class-index PNG (labels_semantic), "
                f"got mode {mask.mode}"
            )
        if mask.size != frame_size:
            raise ValueError(f"{sample.mask_path}: mask size {mask.size} differs from its frame's {frame_size}")
        return mask if mask.mode in ("L", "P") else mask.convert("I")

    def _audio_row(self, sample: FrameSample) -> np.ndarray:
        audio = np.asarray(self.audio_lookup(sample.audio_key), dtype=np.float32)
        if audio.ndim != 2 or audio.shape[0] == 0:
            raise ValueError(f"audio of {sample.uid} must be (T >= 1, dim), got {audio.shape}")
        # Videos can be a second short of their frames; the last second then stands in.
        return audio[min(sample.frame, audio.shape[0] - 1)].copy()

    def _cues(self, sample: FrameSample) -> tuple[np.ndarray, np.ndarray]:
        cues, valid = self.text_lookup(sample.text_key)
        cues, valid = np.array(cues, dtype=np.float32), np.asarray(valid)  # a copy: stores hand out read-only maps
        if cues.ndim != 2 or valid.shape != cues.shape[:1] or valid.dtype != np.bool_:
            raise ValueError(
                f"text cues of {sample.uid}/{sample.frame} must be (N_T, d) floats with an (N_T,) bool mask, "
                f"got {cues.shape} and {valid.dtype} {valid.shape}"
            )
        return cues, valid


def random_crop_box(size: tuple[int, int], rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A (left, upper, right, lower) box covering CROP_SCALE of the area with an aspect ratio in CROP_RATIO,
    drawn like torchvision's RandomResizedCrop (ten tries, then the whole frame)."""
    width, height = size
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return (left, top, left + w, top + h)
    return (0, 0, width, height)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the items' tensors (and bool/int fields) along a new batch axis; strings become lists."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot stack {key!r}: items have shapes {sorted(shapes)}")
            out[key] = torch.stack(values)
        elif isinstance(values[0], (bool, int)):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
