"""AVSFrameDataset on tiny JPEG frames and PNG masks: tensors, normalisation, masks, augmentation, collate."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from model.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AVSFrameDataset,
    FrameSample,
    build_training_samples,
    collate,
)

SIZE, N_T, TEXT, T = 64, 4, 24, 3


def write_video(root: Path, uid: str, n_frames: int, class_index: int, rng: np.random.Generator) -> list[FrameSample]:
    """Frames with a bright box on dark noise; the mask marks the box with `class_index`."""
    folder = root / uid
    (folder / "frames").mkdir(parents=True)
    (folder / "labels_semantic").mkdir()
    samples = []
    for i in range(n_frames):
        image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
        top, left = rng.integers(4, 24, 2)
        image[top : top + 28, left : left + 20] = 230  # left-leaning box: flips and crops move it
        mask[top : top + 28, left : left + 20] = class_index
        Image.fromarray(image).save(folder / "frames" / f"{i}.jpg", quality=95)
        Image.fromarray(mask).save(folder / "labels_semantic" / f"{i}.png")
        samples.append(
            FrameSample(
                uid=uid, subset="v2", frame=i, frame_path=str(folder / "frames" / f"{i}.jpg"),
                mask_path=str(folder / "labels_semantic" / f"{i}.png"), has_mask=True,
                audio_key=uid, text_key=(uid, i),
            )
        )
    return samples


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    samples = write_video(tmp_path, "vidA", 4, class_index=3, rng=rng) + write_video(tmp_path, "vidB", 2, 1, rng)
    audio = {uid: rng.standard_normal((T, 128)).astype(np.float32) for uid in ("vidA", "vidB")}
    text = {
        s.text_key: (rng.standard_normal((N_T, TEXT)).astype(np.float32), np.array([True, True, False, False]))
        for s in samples
    }
    return samples, audio, text


def make(data, **kwargs) -> AVSFrameDataset:
    samples, audio, text = data
    return AVSFrameDataset(samples, audio.__getitem__, text.__getitem__, **kwargs)


def test_item_tensors_and_normalisation(data):
    samples, audio, text = data
    ds = make(data, image_size=32)
    item = ds[1]
    assert item["pixel_values"].shape == (3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64
    assert item["audio"].shape == (128,) and item["cues"].shape == (N_T, TEXT)
    assert item["cue_valid"].dtype == torch.bool and item["has_mask"] is True
    assert (item["uid"], item["subset"], item["frame"]) == ("vidA", "v2", 1)
    # ImageNet normalisation of the PIL-bilinear resize of the frame.
    expected = np.asarray(Image.open(samples[1].frame_path).convert("RGB").resize((32, 32), Image.BILINEAR))
    restored = item["pixel_values"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    np.testing.assert_allclose(restored, expected / 255.0, atol=1e-5)
    np.testing.assert_array_equal(item["audio"].numpy(), audio["vidA"][1])
    np.testing.assert_array_equal(item["cues"].numpy(), text[("vidA", 1)][0])


def test_audio_row_is_the_frames_second_clamped_to_the_last(data):
    _, audio, _ = data
    ds = make(data, image_size=16)
    np.testing.assert_array_equal(ds[0]["audio"].numpy(), audio["vidA"][0])
    np.testing.assert_array_equal(ds[3]["audio"].numpy(), audio["vidA"][T - 1])  # frame 3, only 3 seconds


def test_binary_and_semantic_masks(data):
    samples, _, _ = data
    gt = np.asarray(Image.open(samples[0].mask_path).resize((32, 32), Image.NEAREST))
    binary = make(data, image_size=32, num_labels=1)[0]["mask"].numpy()
    semantic = make(data, image_size=32, num_labels=5)[0]["mask"].numpy()
    np.testing.assert_array_equal(binary, (gt > 0).astype(np.int64))
    np.testing.assert_array_equal(semantic, gt)
    assert set(np.unique(semantic)) == {0, 3}
    with pytest.raises(ValueError, match="outside"):
        make(data, image_size=32, num_labels=3)[0]


def test_unlabelled_frames_and_training_selection(data):
    samples, audio, text = data
    v1s = [FrameSample(**{**s.__dict__, "has_mask": s.frame == 0, "mask_path": s.mask_path if s.frame == 0 else None})
           for s in samples]
    ds = AVSFrameDataset(v1s, audio.__getitem__, text.__getitem__, image_size=16)
    item = ds[1]
    assert item["has_mask"] is False and int(item["mask"].sum()) == 0
    kept = build_training_samples(v1s)
    assert [(s.uid, s.frame) for s in kept] == [("vidA", 0), ("vidB", 0)]
    with pytest.raises(ValueError, match="none of the"):
        build_training_samples([s for s in v1s if not s.has_mask])
    with pytest.raises(ValueError, match="no mask_path"):
        no_path = FrameSample(**{**samples[0].__dict__, "mask_path": None})
        AVSFrameDataset([no_path], audio.__getitem__, text.__getitem__)


def test_augmentation_moves_frame_and_mask_together(data):
    ds = make(data, image_size=48, train=True, seed=3)
    plain = make(data, image_size=48)
    changed = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            bright = item["pixel_values"].mean(0) > 0.5  # the box is bright, the background dark
            agreement = (bright == item["mask"].bool()).float().mean()
            assert agreement > 0.97, (epoch, i, float(agreement))
            changed += not torch.equal(item["mask"], plain[i]["mask"])
    assert changed > 12  # crops and flips really happen


def test_augmentation_is_deterministic_per_seed_epoch_index(data):
    a, b = make(data, image_size=32, train=True, seed=1), make(data, image_size=32, train=True, seed=1)
    other_seed = make(data, image_size=32, train=True, seed=2)
    for ds in (a, b, other_seed):
        ds.set_epoch(5)
    assert all(torch.equal(a[i]["pixel_values"], b[i]["pixel_values"]) for i in range(len(a)))
    assert any(not torch.equal(a[i]["mask"], other_seed[i]["mask"]) for i in range(len(a)))
    first = [a[i]["mask"] for i in range(len(a))]
    a.set_epoch(6)
    assert any(not torch.equal(m, a[i]["mask"]) for i, m in enumerate(first))
    # Workers get copies of the dataset: the draw must not depend on which process loads an item.
    a.set_epoch(5)
    loader = DataLoader(a, batch_size=len(a), num_workers=2, collate_fn=collate, multiprocessing_context="forkserver")
    (loaded,) = list(loader)
    assert torch.equal(loaded["pixel_values"], torch.stack([b[i]["pixel_values"] for i in range(len(b))]))
    # augment=False (or train=False) gives the plain resize.
    no_aug = make(data, image_size=32, train=True, augment=False)
    assert torch.equal(no_aug[0]["pixel_values"], make(data, image_size=32)[0]["pixel_values"])


def test_collate_stacks_tensors_and_lists_strings(data):
    ds = make(data, image_size=16)
    batch = collate([ds[0], ds[4]])
    assert batch["pixel_values"].shape == (2, 3, 16, 16) and batch["mask"].shape == (2, 16, 16)
    assert batch["audio"].shape == (2, 128) and batch["cues"].shape == (2, N_T, TEXT)
    assert batch["cue_valid"].shape == (2, N_T) and batch["cue_valid"].dtype == torch.bool
    assert batch["has_mask"].dtype == torch.bool and batch["frame"].tolist() == [0, 0]
    assert batch["uid"] == ["vidA", "vidB"]
    short = {**ds[1], "cues": torch.zeros(2, TEXT)}
    with pytest.raises(ValueError, match="cannot stack 'cues'"):
        collate([ds[0], short])


def test_bad_inputs_give_clear_errors(data, tmp_path):
    samples, audio, text = data
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (SIZE, SIZE)).save(rgb)
    with pytest.raises(ValueError, match="single-channel"):
        AVSFrameDataset([FrameSample(**{**samples[0].__dict__, "mask_path": str(rgb)})],
                        audio.__getitem__, text.__getitem__)[0]
    small = tmp_path / "small.png"
    Image.new("L", (8, 8)).save(small)
    with pytest.raises(ValueError, match="differs"):
        AVSFrameDataset([FrameSample(**{**samples[0].__dict__, "mask_path": str(small)})],
                        audio.__getitem__, text.__getitem__)[0]
    with pytest.raises(ValueError, match="audio of vidA"):
        AVSFrameDataset(samples, lambda key: np.zeros(128), text.__getitem__)[0]
    with pytest.raises(ValueError, match="text cues"):
        AVSFrameDataset(samples, audio.__getitem__, lambda key: (np.zeros((4, 8)), np.ones(4)))[0]
