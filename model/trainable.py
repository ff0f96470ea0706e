"""What a checkpoint holds of a model: only its trained weights (and statistics learnt with them);
the frozen foundation is reloaded from its folder. Shared by every system of model/registry.py."""
from __future__ import annotations

import torch
from torch import nn


class TrainableWeights(nn.Module):
    def _trained_names(self) -> set[str]:
        """State-dict names a checkpoint keeps: the parameters that train (override to add buffers)."""
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        names = self._trained_names()
        return {k: v for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = self._trained_names()
        missing, unexpected = expected - state.keys(), state.keys() - expected
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not fit this {type(self.config).__name__}: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(state, strict=False)
