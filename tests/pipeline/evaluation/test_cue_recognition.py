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
