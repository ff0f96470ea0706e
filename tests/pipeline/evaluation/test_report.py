"""The report's tables: what each number rests on is shown beside it."""


def test_the_frames_a_condition_rests_on_and_the_skipped_ones_are_shown():
    from flows.evaluate import frames_line
    from pipeline.evaluation.report import frames_cell

    assert frames_cell({"frames": 275, "skipped_without_features": 0}) == "275 frames"
    skipped = {"frames": 190, "skipped_without_features": 85}
    assert frames_cell(skipped) == "190 frames (85 of 275 skipped: no cached features)"
    assert frames_line("muted", skipped).endswith("skipped: no cached features); run `teso features` for the missing ones")
