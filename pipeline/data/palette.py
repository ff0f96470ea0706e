"""The AVSBench colour palette and the class-index convention shared by reader and generator.

AVSBench-semantic colours masks with the PASCAL-VOC bit-interleaving palette over 71 entries
(`get_v2_pallete` in the AVSBench code). Palette row i is class index i of the class map:
0 is background, and a class named in `label2idx.json` (1-based, background=1) has index
`label2idx[name] - 1`. `labels_semantic` stores that same index as a gray value.
"""
from __future__ import annotations

import numpy as np

NUM_CLASSES = 71  # 70 AVSS object classes + background; fixed by the AVSBench palette


def palette(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, 3) uint8 RGB colours, row i for class index i."""
    out = np.zeros((num_classes, 3), dtype=np.uint8)
    for j in range(num_classes):
        lab, i = j, 0
        while lab > 0:
            out[j, 0] |= ((lab >> 0) & 1) << (7 - i)
            out[j, 1] |= ((lab >> 1) & 1) << (7 - i)
            out[j, 2] |= ((lab >> 2) & 1) << (7 - i)
            i += 1
            lab >>= 3
    return out


def rgb_to_index(rgb: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(H, W, 3) uint8 colour mask -> (H, W) int64 class map.

    Colours outside the palette map to background, as AVSBench's `color_mask_to_label`
    does (its argmax over all-false rows returns 0)."""
    pal = palette(num_classes).astype(np.int64)
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    lut = dict(zip(pal_code.tolist(), range(num_classes)))
    uniq, inv = np.unique(code, return_inverse=True)
    return np.array([lut.get(c, 0) for c in uniq.tolist()], dtype=np.int64)[inv].reshape(code.shape)


def index_to_rgb(index: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(H, W) class map -> (H, W, 3) uint8 colour mask."""
    return palette(num_classes)[index]
