import numpy as np
import pytest
import soundfile as sf

from pipeline.data.audio_io import AudioError, audio_info, load_audio


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def test_48k_stereo_sine_becomes_16k_mono_at_the_same_pitch(tmp_path):
    left = _sine(440, 48000, 2.0)
    path = tmp_path / "a.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 48000, subtype="PCM_16")
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 32000
    assert abs(_peak_hz(wave, 16000) - 440) <= 2
    # channels are averaged: amplitude (0.5 + 0.25) / 2 away from the filter's edges
    assert np.max(np.abs(wave[2000:-2000])) == pytest.approx(0.375, abs=0.01)


def test_same_rate_is_read_unchanged(tmp_path):
    x = _sine(1000, 16000, 0.5)
    path = tmp_path / "a.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    assert np.array_equal(load_audio(path, 16000), x)


@pytest.mark.parametrize(
    "name, sr, channels, subtype",
    [("mono8k.wav", 8000, 1, "PCM_16"), ("stereo44k.wav", 44100, 2, "FLOAT"), ("clip.flac", 22050, 1, "PCM_16"),
     ("clip.ogg", 32000, 2, "VORBIS")],
)
def test_odd_formats_load_at_16k(tmp_path, name, sr, channels, subtype):
    x = _sine(300, sr, 1.5)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / name
    sf.write(path, data, sr, subtype=subtype)
    assert audio_info(path)[:2] == (sr, channels)
    assert audio_info(path)[2] == pytest.approx(1.5, abs=1e-3)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (int(np.ceil(len(x) * 16000 / sr)),)
    assert abs(_peak_hz(wave, 16000) - 300) <= 2


def test_audio_info_reads_the_header(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((48000 * 3, 2), np.float32), 48000)
    assert audio_info(path) == (48000, 2, 3.0)


def test_bad_files_raise_audio_error_naming_kind_and_path(tmp_path):
    missing = tmp_path / "nope.wav"
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF this is not audio at all" * 10)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    for fn in (load_audio, audio_info):
        with pytest.raises(AudioError, match=f"^audio missing: {missing}$"):
            fn(missing)
        with pytest.raises(AudioError, match=r"^audio unreadable \(.+\): .*garbage.wav$"):
            fn(garbage)
        with pytest.raises(AudioError, match=r"^audio empty \(0 samples\): .*empty.wav$"):
            fn(empty)
    assert issubclass(AudioError, ValueError)


def test_non_finite_samples_and_bad_rate_are_rejected(tmp_path):
    path = tmp_path / "nan.wav"
    x = _sine(300, 16000, 0.1)
    x[10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="audio invalid"):
        load_audio(path)
    with pytest.raises(ValueError, match="target_sr"):
        load_audio(path, 0)
