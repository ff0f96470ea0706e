import hashlib

import numpy as np
import pytest
import torch
from torchvggish import vggish_input
from torchvggish.torchvggish import VGG, Postprocessor, make_layers

from pipeline.config import ConfigError, load_config
from pipeline.features.backends import AUDIO_ENCODERS
from pipeline.features.audio_encoders import (
    LogMelFrontend,
    LogMelStatsEncoder,
    MissingWeightsError,
    VGGishEncoder,
    fit_seconds,
    num_examples,
    samples_for_examples,
)

SR = 16000


def _noise(n: int, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _tones(n: int) -> np.ndarray:
    t = np.arange(n) / SR
    # A loud pure tone leaves far bands near zero, where float32 FFT error would show in the log.
    return (0.9 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


def _reference(wave: np.ndarray) -> np.ndarray:
    return vggish_input.waveform_to_examples(wave, SR).detach()[:, 0].numpy()  # (E, 96, 64)


@pytest.mark.parametrize("n_samples", [15600, 2 * SR, int(2.5 * SR) + 37, 3 * SR + 15359])
@pytest.mark.parametrize("make", [_noise, _tones, lambda n: _noise(n, scale=1e-4)])
def test_frontend_matches_torchvggish(n_samples, make):
    wave = make(n_samples)
    ours = LogMelFrontend()(torch.from_numpy(wave)[None])[0].numpy()
    reference = _reference(wave)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    assert np.abs(ours - reference).max() <= 1e-4
    assert num_examples(n_samples) == len(reference)


@pytest.mark.parametrize("rate, channels", [(48000, 2), (44100, 1), (16000, 2)])
def test_audio_file_to_examples_matches_torchvggish_on_any_rate_and_channels(tmp_path, rate, channels):
    """The whole path from a file: our reader (channel mean, resampling) + front end against
    torchvggish's own wavfile_to_examples on the same PCM_16 file (AVSBench ships 48 kHz stereo)."""
    import soundfile as sf

    from pipeline.data.audio_io import load_audio

    n = int(2.3 * rate)
    t = np.arange(n) / rate
    left = 0.6 * np.sin(2 * np.pi * 523 * t) + _noise(n, seed=3, scale=0.05)
    wave = np.stack([left, 0.4 * np.sin(2 * np.pi * 1800 * t)], axis=1)[:, :channels]
    path = tmp_path / "audio.wav"
    sf.write(path, wave, rate, subtype="PCM_16")
    ours = LogMelFrontend()(torch.from_numpy(load_audio(path, SR))[None])[0].numpy()
    reference = vggish_input.wavfile_to_examples(str(path)).detach()[:, 0].numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-4


def test_frontend_batch_with_padding_matches_each_clip():
    waves = [_noise(2 * SR + 500, seed=1), _tones(3 * SR + 17), _noise(SR, seed=2)]
    batch = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], batch_first=True)
    examples = LogMelFrontend()(batch)  # (3, E, 96, 64)
    for b, wave in enumerate(waves):
        reference = _reference(wave)
        assert np.abs(examples[b, : len(reference)].numpy() - reference).max() <= 1e-4


def test_example_counts_and_sample_budget():
    assert num_examples(samples_for_examples(3)) == 3
    assert num_examples(samples_for_examples(3) - 1) == 2
    assert num_examples(399) == 0 and samples_for_examples(1) == 15600
    with pytest.raises(ValueError, match="samples"):
        LogMelFrontend()(torch.zeros(1, 300))


def test_fit_seconds_pads_with_the_last_example_and_truncates():
    examples = np.arange(3)[:, None] * np.ones((3, 4))
    assert fit_seconds(examples, 5)[:, 0].tolist() == [0, 1, 2, 2, 2]
    assert fit_seconds(examples, 2)[:, 0].tolist() == [0, 1]
    assert fit_seconds(torch.from_numpy(examples), 4)[:, 0].tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="zero examples"):
        fit_seconds(examples[:0], 3)
    with pytest.raises(ValueError, match="seconds"):
        fit_seconds(examples, 0)


# Clips whose example count is below, equal to and above the video's seconds.
CLIPS = [(_noise(int(2.5 * SR), seed=3), 3), (_tones(int(3.2 * SR)), 3), (_noise(int(4.1 * SR), seed=4, scale=0.1), 2)]


@pytest.fixture(scope="module")
def vggish_files(tmp_path_factory):
    """A random VGGish state dict in the official vggish-10086976.pth layout, and PCA params."""
    folder = tmp_path_factory.mktemp("vggish")
    torch.manual_seed(7)
    network = VGG(make_layers(), postprocess=False)
    state = network.state_dict()
    assert "features.0.weight" in state and "embeddings.4.bias" in state
    weights = folder / "vggish-10086976.pth"
    torch.save(state, weights)
    rng = np.random.default_rng(0)
    # Scaled so most projected values fall inside the [-2, 2] quantisation range.
    pca = {"pca_eigen_vectors": rng.standard_normal((128, 128)) * 5, "pca_means": rng.standard_normal(128) * 0.01}
    pca_path = folder / "vggish_pca_params.pth"
    torch.save(pca, pca_path)  # numpy arrays, as torchvggish's released file
    return weights, pca_path, state, pca


@pytest.fixture(scope="module")
def reference_embeddings(vggish_files):
    """torchvggish's own per-file path: waveform_to_examples, the per-second fit, one forward."""
    _, _, state, _ = vggish_files
    network = VGG(make_layers(), postprocess=False).eval()
    network.load_state_dict(state)
    out = []
    for wave, t in CLIPS:
        examples = vggish_input.waveform_to_examples(wave, SR).detach()  # (E, 1, 96, 64)
        if len(examples) < t:  # AVSBench preprocess_s4.py: repeat the last example
            examples = torch.cat([examples, examples[-1:].repeat(t - len(examples), 1, 1, 1)])
        with torch.no_grad():
            out.append(network(examples[:t]))
    return out


def test_vggish_matches_torchvggish_with_the_same_weights(vggish_files, reference_embeddings):
    weights, _, _, _ = vggish_files
    encoder = VGGishEncoder(str(weights), batch_size=4)  # 4 < 8 examples: several batches
    ours = encoder.encode([w for w, _ in CLIPS], [t for _, t in CLIPS])
    for got, expected, (_, t) in zip(ours, reference_embeddings, CLIPS):
        assert got.shape == (t, 128) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6)
    provenance = encoder.provenance()
    assert provenance["weights"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert provenance["encoder"] == "vggish" and provenance["postprocess"] is False


def test_vggish_pca_postprocess_matches_torchvggish(vggish_files, reference_embeddings):
    weights, pca_path, _, pca = vggish_files
    encoder = VGGishEncoder(str(weights), postprocess=True, pca_params_path=str(pca_path))
    ours = encoder.encode([w for w, _ in CLIPS], [t for _, t in CLIPS])
    # torchvggish's Postprocessor downloads its params in __init__; give it ours instead.
    postprocessor = Postprocessor.__new__(Postprocessor)
    postprocessor._pca_matrix = torch.as_tensor(pca["pca_eigen_vectors"]).float()
    postprocessor._pca_means = torch.as_tensor(pca["pca_means"].reshape(-1, 1)).float()
    for got, expected in zip(ours, reference_embeddings):
        expected = postprocessor.postprocess(expected).numpy()
        assert np.abs(got - expected).max() <= 1.0  # 8-bit codes: rounding may flip by one
        assert (got == expected).mean() > 0.99
    assert encoder.provenance()["pca_params_sha256"] == hashlib.sha256(pca_path.read_bytes()).hexdigest()
    npz_path = pca_path.with_suffix(".npz")  # the TensorFlow release's format
    np.savez(npz_path, **pca)
    from_npz = VGGishEncoder(str(weights), postprocess=True, pca_params_path=str(npz_path))
    np.testing.assert_array_equal(from_npz.encode([CLIPS[0][0]], [3])[0], ours[0])


def test_vggish_refuses_to_run_without_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match="no weights_path"):
        VGGishEncoder(None)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        VGGishEncoder(str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a VGGish state dict"):
        VGGishEncoder(str(bad))


def test_vggish_random_weights_warn_are_seeded_and_recorded():
    waves, seconds = [CLIPS[0][0]], [2]
    with pytest.warns(UserWarning, match="RANDOM weights"):
        a = VGGishEncoder(None, allow_random_weights=True, seed=3)
    assert a.provenance()["weights"] == "random seed 3"
    with pytest.warns(UserWarning):
        b = AUDIO_ENCODERS.get("vggish").build(load_config(None, ["features.audio.encoder=vggish", "features.audio.allow_random_weights=true", "features.audio.seed=3"]))
    np.testing.assert_array_equal(a.encode(waves, seconds)[0], b.encode(waves, seconds)[0])
    for name, param in a.network.state_dict().items():
        assert torch.equal(param, b.network.state_dict()[name]), name


def test_logmel_encoder_is_the_band_mean_and_std_per_second():
    encoder = AUDIO_ENCODERS.get("logmel").build(load_config(None))
    waves, seconds = [w for w, _ in CLIPS], [t for _, t in CLIPS]
    first = encoder.encode(waves, seconds)
    assert [f.shape for f in first] == [(3, 128), (3, 128), (2, 128)]
    reference = fit_seconds(_reference(waves[0]), 3)  # (3, 96, 64)
    expected = np.concatenate([reference.mean(axis=1), reference.std(axis=1)], axis=1)
    np.testing.assert_allclose(first[0], expected, rtol=1e-5, atol=1e-5)
    # Deterministic, and independent of batching and clip order.
    again = LogMelStatsEncoder(batch_size=1).encode(waves[::-1], seconds[::-1])[::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert encoder.provenance()["weights"] == "none"


def test_encode_rejects_bad_input():
    encoder = LogMelStatsEncoder()
    with pytest.raises(ValueError, match="shorter than one VGGish example"):
        encoder.encode([np.zeros(15599, np.float32)], [1])
    with pytest.raises(ValueError, match="2 waveforms but 1"):
        encoder.encode([np.zeros(SR, np.float32)] * 2, [1])
    with pytest.raises(ValueError, match="mono"):
        encoder.encode([np.zeros((SR, 2), np.float32)], [1])
    with pytest.raises(ValueError, match="NaN"):
        encoder.encode([np.full(SR, np.nan, np.float32)], [1])
    with pytest.raises(ValueError, match="positive integer"):
        encoder.encode([np.zeros(SR, np.float32)], [0])
    with pytest.raises(ConfigError, match="unknown audio encoder 'panns'"):
        load_config(None, ["features.audio.encoder=panns"])
