"""Run a model over a dataset: raw batches, or every output an evaluation needs, kept on CPU."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from model.data import collate


@torch.no_grad()
def predict(model, dataset, batch_size: int = 8, device: str | torch.device = "cpu"):
    """Yield (batch, outputs) over a dataset in order; outputs.semantic_map (B, N_C, H, W) is the
    model's semantic inference (for binary AVS: the sounding-object probability map)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0)
    for batch in loader:
        out = model(
            batch["pixel_values"].to(device),
            batch["audio"].to(device),
            batch["cues"].to(device),
            batch["cue_valid"].to(device),
        )
        yield batch, out


@dataclass
class ConditionOutputs:
    """Everything one pass over the split produced (kept on CPU)."""

    scores: list[torch.Tensor] = field(default_factory=list)  # (N_C, H, W) per frame
    gts: list[torch.Tensor] = field(default_factory=list)  # (H, W) class map per frame
    has_mask: list[bool] = field(default_factory=list)
    keys: list[tuple] = field(default_factory=list)  # (subset, uid, frame)
    cue_scores: list[np.ndarray | None] = field(default_factory=list)
    cue_kept: list[np.ndarray | None] = field(default_factory=list)
    heat: list[torch.Tensor | None] = field(default_factory=list)  # (N_P, h, w) per-prompt heat maps


def _heat_maps(out, b: int) -> torch.Tensor | None:
    """Where each prompt (cue) steers the masks: sum over queries of attention(q, cue) * sigmoid(mask_q)."""
    if out.pmqs_attention is None:
        return None
    attn = out.pmqs_attention[b].mean(0)  # (N_Q, N_P)
    masks = out.mask_logits[b].sigmoid()  # (N_Q, h, w)
    heat = torch.einsum("qp,qhw->phw", attn, masks)
    return (heat / heat.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]).cpu()


def run_condition(model, dataset, device) -> ConditionOutputs:
    res = ConditionOutputs()
    for batch, out in predict(model, dataset, device=device):
        for b in range(out.semantic_map.shape[0]):
            res.scores.append(out.semantic_map[b].float().cpu())
            res.gts.append(batch["mask"][b])
            res.has_mask.append(bool(batch["has_mask"][b]))
            res.keys.append((batch["subset"][b], batch["uid"][b], int(batch["frame"][b])))
            res.cue_scores.append(None if out.cue_scores is None else out.cue_scores[b].cpu().numpy())
            res.cue_kept.append(None if out.cue_kept is None else out.cue_kept[b].cpu().numpy())
            res.heat.append(_heat_maps(out, b))
    return res
