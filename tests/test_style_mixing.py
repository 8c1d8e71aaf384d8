"""MixStyle (Zhou et al. 2021) and style noise (DSU, Li et al. 2022): feature statistics
mixed between pictures or drawn around each picture's own, only in training."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.model.style_mixing import MixStyle, StyleNoise


def _maps(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Each picture its own "style": a mean and a spread per channel.
    style_mean = rng.normal(0, 3, (6, 1, 1, 4))
    style_spread = rng.uniform(0.5, 4, (6, 1, 1, 4))
    return (rng.normal(size=(6, 8, 8, 4)) * style_spread + style_mean).astype(np.float32)


def _statistics(x: np.ndarray):
    return x.mean(axis=(1, 2)), x.std(axis=(1, 2))


@pytest.mark.parametrize("layer", [MixStyle, StyleNoise])
def test_at_inference_the_maps_pass_unchanged(layer):
    x = _maps()
    layer = layer(probability=1.0, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_in_training_each_picture_keeps_its_content_under_a_mixed_style():
    x = _maps()
    mixed = np.asarray(MixStyle(probability=1.0, alpha=0.5, seed=3)(x, training=True))
    mean, spread = _statistics(x)
    new_mean, new_spread = _statistics(mixed)
    assert not np.allclose(new_mean, mean, atol=1e-3)
    # The normalised maps (the content) are the input's.
    np.testing.assert_allclose((mixed - new_mean[:, None, None]) / new_spread[:, None, None],
                               (x - mean[:, None, None]) / spread[:, None, None], atol=1e-3)
    # Every new style lies between the picture's own and some picture's of the batch.
    low, high = mean.min(axis=0), mean.max(axis=0)
    assert np.all((new_mean >= low - 1e-4) & (new_mean <= high + 1e-4))


def test_with_probability_zero_nothing_is_mixed_even_in_training():
    x = _maps()
    np.testing.assert_array_equal(np.asarray(MixStyle(probability=0.0)(x, training=True)), x)


@pytest.mark.parametrize("settings, error", [
    ({"probability": 1.5}, "probability"),
    ({"probability": -0.1}, "probability"),
    ({"alpha": 0.0}, "alpha"),
])
def test_bad_settings_are_refused(settings, error):
    with pytest.raises(ValueError, match=error):
        MixStyle(**settings)


def test_only_the_lite_backbones_take_style_mixing():
    from hematovision.model.network import build_classifier

    model = build_classifier("lite0", 3, 64, pretrained=False, mix_style=True)
    assert [layer.name for layer in model.layers if isinstance(layer, MixStyle)] == [
        "block2_mixstyle", "block4_mixstyle", "block7_mixstyle"]
    with pytest.raises(ValueError, match="Lite"):
        build_classifier("mobilenetv2", 3, 64, pretrained=False, mix_style=True)


def test_style_noise_keeps_the_content_and_moves_styles_as_far_as_the_batch_varies():
    x = _maps()
    mean, spread = _statistics(x)
    shifts, outside = [], 0
    for seed in range(40):
        noisy = np.asarray(StyleNoise(probability=1.0, seed=seed)(x, training=True))
        new_mean, new_spread = _statistics(noisy)
        content = (noisy - new_mean[:, None, None]) / new_spread[:, None, None]
        kept = new_spread > 0.3  # where the new style is not nearly flat
        np.testing.assert_allclose(
            np.moveaxis(content, 3, 1)[kept],
            np.moveaxis((x - mean[:, None, None]) / spread[:, None, None], 3, 1)[kept],
            atol=1e-2)
        shifts.append(new_mean - mean)
        outside += np.sum((new_mean < mean.min(axis=0)) | (new_mean > mean.max(axis=0)))
    # A standard normal times the batch's spread of means, per channel.
    measured = np.std(np.stack(shifts), axis=(0, 1))
    np.testing.assert_allclose(measured, mean.std(axis=0), rtol=0.2)
    assert outside > 0  # unlike mixing, it reaches styles outside the batch's range
    # Pictures of one style, the same content: their style barely moves.
    same = np.repeat(x[:1], 6, axis=0)
    np.testing.assert_allclose(np.asarray(StyleNoise(probability=1.0, seed=0)(
        same, training=True)), same, atol=1e-2)


def test_style_noise_follows_mixstyle_in_the_lite_backbones():
    from hematovision.model.network import build_classifier

    model = build_classifier("lite0", 3, 64, pretrained=False, mix_style=True,
                             style_noise=True)
    names = [layer.name for layer in model.layers if isinstance(layer, (MixStyle, StyleNoise))]
    assert names == ["block2_mixstyle", "block2_stylenoise", "block4_mixstyle",
                     "block4_stylenoise", "block7_mixstyle", "block7_stylenoise"]
    with pytest.raises(ValueError, match="Lite"):
        build_classifier("mobilenetv2", 3, 64, pretrained=False, style_noise=True)
