"""The segmentation systems one trainer and one evaluation run, by `train.model.architecture`:
`teso` (model/segmenter.py, the default) and `gavs` (model/gavs.py). Each takes its settings
dataclass (model/config.py ARCHITECTURES) and offers the same interface: forward(pixel_values,
audio, cues, cue_valid, mask_labels, class_labels) -> TeSOOutput, param_groups, and the
trainable_state_dict / load_trainable_state_dict pair the checkpoints use."""
from __future__ import annotations

from torch import nn

from model.config import GAVSConfig, TeSOConfig
from model.gavs import GAVSSegmenter
from model.segmenter import TeSOSegmenter

MODELS: dict[type, type[nn.Module]] = {TeSOConfig: TeSOSegmenter, GAVSConfig: GAVSSegmenter}


def build_model(config: TeSOConfig | GAVSConfig) -> nn.Module:
    return MODELS[type(config)](config)
