"""Claims over seeds: intervals, and verdicts computed from the numbers."""
import pytest

from pipeline.evaluation.claims import CONTRADICTED, HOLDS, NOT_RUN, NOT_SHOWN, check_claims, interval, metric_rows, verdict


def test_min_max_below_five_seeds_and_a_t_interval_from_five():
    assert vars(interval([0.2, 0.5, 0.3])) == {"n": 3, "mean": pytest.approx(1 / 3), "low": 0.2, "high": 0.5, "kind": "min-max"}
    iv = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445
    assert iv.kind == "95% t" and iv.mean == 3.0 and iv.high - 3.0 == pytest.approx(2.776445 * (2.5 ** 0.5) / 5 ** 0.5, rel=1e-5)


def test_a_claim_holds_only_when_it_holds_over_the_whole_interval():
    assert verdict([0.1, 0.2, 0.05]) == HOLDS
    assert verdict([0.1, -0.01, 0.2]) == NOT_SHOWN  # one seed against: not shown
    assert verdict([-0.1, -0.2, -0.3]) == CONTRADICTED
    assert verdict([0.01, 0.02, 0.015, 0.01, -0.03]) == NOT_SHOWN  # the t interval crosses zero


def _metrics(miou, mute_drop, noise_drop, rec1=0.5, rec2=0.6, kept=0.7):
    return {
        "conditions": {
            "normal": {"miou": miou, "fscore": miou, "by_subset": {"v1s": {"miou": miou, "fscore": miou, "frames": 1}}},
            "mute": {"miou": miou * (1 - mute_drop), "miou_drop": mute_drop},
            "wgn10": {"miou": miou * (1 - noise_drop), "miou_drop": noise_drop},
        },
        "cue_recognition": {"rec1_ap": rec1, "rec2_ap": rec2, "cue_kept_share": kept},
    }


def test_every_claim_from_per_seed_results():
    results = {
        "teso": {0: _metrics(0.70, 0.55, 0.10), 1: _metrics(0.72, 0.50, 0.12), 2: _metrics(0.71, 0.60, -0.01)},
        "no_audio": {0: _metrics(0.60, 0.0, 0.0), 1: _metrics(0.61, 0.0, 0.0), 2: _metrics(0.62, 0.0, 0.0)},
        "no_text": {0: _metrics(0.71, 0.40, 0.0), 1: _metrics(0.70, 0.45, 0.0), 2: _metrics(0.73, 0.40, 0.0)},
    }
    roles = {"teso": "teso", "no_audio": "no_audio", "no_text": "no_text", "nouns": "nouns"}
    got = {c["id"]: c for c in check_claims(results, roles, "normal", "mute", {"wgn10": "noise 10 dB"})}
    assert {k: c["verdict"] for k, c in got.items()} == {
        "C1": HOLDS,  # 0.10, 0.11, 0.09
        "C2": NOT_SHOWN,  # -0.01, 0.02, -0.02
        "C3": NOT_RUN,  # no nouns run
        "C4": HOLDS,  # drops 0.50-0.60 >= 0.30 at every seed
        "C4b": HOLDS,  # 0.15, 0.05, 0.20
        "C5 noise 10 dB": NOT_SHOWN,  # -0.01 at seed 2
        "C6": HOLDS,
        "C6b": HOLDS,
    }
    assert got["C1"]["values"] == pytest.approx([0.10, 0.11, 0.09]) and got["C3"]["missing"] == ["nouns"]
    assert [r["metric"] for r in metric_rows({"teso": results["teso"]}) if r["condition"] == "normal"] == ["miou", "fscore", "miou/v1s"]


def test_a_dynamic_mask_that_keeps_every_cue_contradicts_c6b():
    results = {"teso": {s: _metrics(0.7, 0.5, 0.1, kept=1.0) for s in range(3)}}
    c6b = next(c for c in check_claims(results, {"teso": "teso"}, "normal", "mute", {}) if c["id"] == "C6b")
    assert c6b["verdict"] == CONTRADICTED


def test_the_readme_block_is_generated_from_a_reproduce_report():
    from pipeline.evaluation.reproduce_report import README_BEGIN, README_END, readme_block, replace_readme_block

    results = {"teso": {s: _metrics(0.7 + s / 100, 0.5, 0.1) for s in range(3)}, "no_audio": {s: _metrics(0.6, 0.0, 0.0) for s in range(3)}}
    claims = check_claims(results, {"teso": "teso", "no_audio": "no_audio"}, "normal", "mute", {"wgn10": "noise only 10 dB"})
    data = {
        "seeds": [0, 1, 2], "torch_threads": 1, "commit": "abc1234", "date": "2026-12-02", "reference_condition": "normal",
        "claims": [c | {"interval": None if c["interval"] is None else vars(c["interval"])} for c in claims],
        "metrics": [r | {"interval": vars(r["interval"])} for r in metric_rows(results)],
        "runs": {run: {str(s): m for s, m in by_seed.items()} for run, by_seed in results.items()},
        "last_epoch_change": {"teso": {"0": 0.004, "1": -0.002, "2": None}},
    }
    block = readme_block(data, "configs/demo.yaml")
    assert "kept share of `teso` per seed [0, 1, 2]: 0.700, 0.700, 0.700." in block
    assert "validation mIoU change over the last epoch of `teso` per seed: +0.004, -0.002, -." in block
    assert block.startswith(README_BEGIN) and block.endswith(README_END)
    assert "commit abc1234, 2026-12-02: 3 seeds [0, 1, 2], 1 torch thread(s)" in block
    assert "| C1: TeSO mIoU > (-) audio | mIoU(TeSO) - mIoU((-) audio) | +0.110 [+0.100, +0.120] | holds |" in block
    assert "| teso | 0.710 [0.700, 0.720] | 0.500 [0.500, 0.500] |" in block
    readme = f"intro\n{README_BEGIN}\nold numbers\n{README_END}\nrest\n"
    assert replace_readme_block(readme, block) == f"intro\n{block}\nrest\n"
    with pytest.raises(ValueError, match="exactly one results block"):
        replace_readme_block("no markers", block)
