import math

import numpy as np
import pytest

from pipeline.features.audio_conditions import (
    DEFAULT_CONDITIONS,
    AudioCondition,
    apply_condition,
    measured_snr_db,
)
from pipeline.features.audio_encoders import LogMelStatsEncoder


def get_condition(name: str) -> AudioCondition:
    return {c.name: c for c in DEFAULT_CONDITIONS}[name]


def _clip(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_default_conditions_are_the_papers_four():
    assert [c.name for c in DEFAULT_CONDITIONS] == ["normal", "mute", "wgn_10db", "wgn_40db", "wgn_10db_added", "wgn_40db_added"]
    assert [(c.snr_db, c.mode) for c in DEFAULT_CONDITIONS[2:]] == [(10.0, "replace"), (40.0, "replace"), (10.0, "add"), (40.0, "add")]
    assert [c.label for c in DEFAULT_CONDITIONS] == ["normal", "muted", "noise only 10 dB", "noise only 40 dB", "noise 10 dB added", "noise 40 dB added"]


def test_normal_is_a_float32_copy_and_mute_is_zeros_of_the_same_length():
    wave = _clip().astype(np.float64)
    normal = apply_condition(wave, get_condition("normal"), "a")
    assert normal.dtype == np.float32 and np.array_equal(normal, wave.astype(np.float32))
    mute = apply_condition(wave, get_condition("mute"), "a")
    assert mute.shape == wave.shape and mute.dtype == np.float32 and not mute.any()


@pytest.mark.parametrize("snr_db", [10.0, 40.0])
def test_added_noise_has_the_requested_snr(snr_db):
    clean = _clip()
    noisy = apply_condition(clean, AudioCondition(name=f"wgn{snr_db}", kind="wgn", snr_db=snr_db), "uid-1")
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert abs(measured_snr_db(clean, noisy) - snr_db) < 0.5
    # White: the added noise is uncorrelated with the signal and flat-spectrum-like.
    noise = noisy.astype(np.float64) - clean
    assert abs(np.corrcoef(noise, clean)[0, 1]) < 0.05


def test_replace_mode_returns_only_noise_at_the_snr_level():
    clean = _clip()
    cond = AudioCondition(name="wgn10r", kind="wgn", snr_db=10.0, mode="replace")
    out = apply_condition(clean, cond, "uid-1")
    expected_power = np.mean(clean.astype(np.float64) ** 2) / 10.0
    assert np.mean(out.astype(np.float64) ** 2) == pytest.approx(expected_power, rel=1e-3)
    assert abs(np.corrcoef(out, clean)[0, 1]) < 0.05
    added = apply_condition(clean, AudioCondition(name="wgn10", kind="wgn", snr_db=10.0), "uid-1")
    np.testing.assert_allclose(added - clean, out, atol=1e-6)  # same noise, signal left out


def test_noise_is_deterministic_per_seed_and_key():
    clean = _clip()
    cond = get_condition("wgn_10db_added")
    a = apply_condition(clean, cond, "uid-1")
    assert np.array_equal(a, apply_condition(clean, cond, "uid-1"))
    assert not np.array_equal(a, apply_condition(clean, cond, "uid-2"))
    other_seed = AudioCondition(name="wgn10", kind="wgn", snr_db=10.0, seed=1)
    assert not np.array_equal(a, apply_condition(clean, other_seed, "uid-1"))


def test_silent_clip_stays_silent_and_its_snr_is_infinite():
    silent = np.zeros(16000, dtype=np.float32)
    out = apply_condition(silent, get_condition("wgn_10db"), "quiet")
    assert not out.any()
    assert measured_snr_db(silent, out) == math.inf


def test_bad_conditions_and_inputs_are_refused():
    with pytest.raises(ValueError, match="finite snr_db"):
        AudioCondition(name="x", kind="wgn")
    with pytest.raises(ValueError, match="only applies"):
        AudioCondition(name="x", kind="mute", snr_db=10.0)
    with pytest.raises(ValueError, match="kind"):
        AudioCondition(name="x", kind="pink")
    with pytest.raises(ValueError, match="mode"):
        AudioCondition(name="x", kind="wgn", snr_db=10.0, mode="mix")
    with pytest.raises(ValueError, match="seed"):
        AudioCondition(name="x", kind="wgn", snr_db=10.0, seed=-1)
    with pytest.raises(ValueError, match="mono"):
        apply_condition(np.zeros((2, 100), np.float32), get_condition("mute"), "a")
    with pytest.raises(ValueError, match="NaN"):
        apply_condition(np.array([0.0, np.nan]), get_condition("normal"), "a")
    with pytest.raises(ValueError, match="float"):
        apply_condition(np.zeros(100, np.int16), get_condition("normal"), "a")


def test_conditions_change_the_features():
    clean = _clip(2.2)
    encoder = LogMelStatsEncoder()
    names = ("normal", "mute", "wgn_10db_added", "wgn_40db_added", "wgn_10db", "wgn_40db")
    waves = [apply_condition(clean, get_condition(name), "uid-1") for name in names]
    normal, mute, added10, added40, only10, only40 = encoder.encode(waves, [2] * len(names))
    assert np.abs(normal - mute).max() > 1.0
    # Stronger added noise moves the features further from the clean ones.
    assert np.abs(normal - added10).mean() > np.abs(normal - added40).mean() > 0
    # Noise-only audio carries nothing of the clip: far from it at either level, and louder at 10 dB.
    assert min(np.abs(normal - only10).mean(), np.abs(normal - only40).mean()) > np.abs(normal - added10).mean()
    assert only10[:, :64].mean() > only40[:, :64].mean()  # mean log-mel energy
