import pytest

from pipeline.evaluation.cue_recognition import average_precision, mean_average_precision


def test_hand_computed_average_precision():
    # truth {dog, guitar}: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert average_precision(["dog", "car", "guitar"], ["dog", "guitar"]) == pytest.approx((1 + 2 / 3) / 2)
    # plural and case are normalised; a class never named contributes 0
    assert average_precision(["Dogs"], ["dog", "piano"]) == pytest.approx(0.5)
    # a repeated hit does not count twice
    assert average_precision(["car", "dog", "dog"], ["dog"]) == pytest.approx(0.5)
    assert average_precision([], ["dog"]) == 0.0
    assert average_precision(["dog"], []) is None


def test_mean_skips_frames_without_sounding_objects():
    value, counted = mean_average_precision([(["dog"], ["dog"]), (["car"], []), ([], ["bell"])])
    assert counted == 2 and value == pytest.approx(0.5)


def test_baseline_cue_filter_keeps_named_classes_and_background():
    import torch

    from pipeline.evaluation.segmentation import cue_filter

    scores = torch.ones(4, 2, 2)  # background, dog, guitar, piano
    names = {0: "background", 1: "dog", 2: "guitar", 3: "piano"}
    out = cue_filter(scores, ["Dogs", "piano"], names)
    assert out[:, 0, 0].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert cue_filter(scores, [], names)[:, 0, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_rec1_rec2_and_kept_share_on_a_hand_computed_pass():
    import numpy as np
    import torch

    from pipeline.evaluation.cue_recognition import cue_recognition
    from pipeline.model_io.inference import ConditionOutputs

    names = {1: "dog", 2: "guitar", 3: "bell"}
    gts = {"a": torch.tensor([[0, 1], [2, 2]]), "b": torch.tensor([[1, 0]]), "c": torch.zeros(1, 2, dtype=torch.long)}
    frames = {  # key: (cues by the reasoner, kept by the dynamic mask, scores xi)
        "a": (["car", "dog", "guitar", "bell"], [False, True, True], [0.9, 0.1, 0.5]),
        "b": (["bell"], [True, False, False], [0.2, -1.0, -1.0]),
        "c": (["car"], [False, False, False], [-0.3, -1.0, -1.0]),
        "d": (None, [True, True, True], [1.0, 1.0, 1.0]),  # no cue row: not counted
    }
    res = ConditionOutputs()
    for key, (_, kept, xi) in frames.items():
        res.keys.append(key)
        res.cue_kept.append(np.array(kept))
        res.cue_scores.append(np.array(xi))
    cues = {k: c for k, (c, _, _) in frames.items() if c is not None}
    out = cue_recognition(res, cues, gts, names, n_t=3)
    # REC#1, frame a: the first 3 cues [car, dog, guitar] against {dog, guitar}: hits at ranks 2 and 3
    # -> (1/2 + 2/3) / 2; frame b: [bell] against {dog} -> 0; frame c has nothing sounding: skipped.
    assert out["rec1_frames"] == 2 and out["rec1_ap"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 0) / 2)
    # REC#2, frame a: the kept cues by xi, [guitar (0.5), dog (0.1)] -> AP 1; frame b: [bell] -> 0.
    assert out["rec2_frames"] == 2 and out["rec2_ap"] == pytest.approx(0.5)
    # kept share over every frame with cues: a 2/3, b 1/1, c 0/1
    assert out["cue_kept_share"] == pytest.approx((2 / 3 + 1 + 0) / 3)
