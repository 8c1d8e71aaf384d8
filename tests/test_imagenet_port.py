"""The Keras ports of the offline ImageNet backbones must recognise natural photos as
ImageNet does, and read their checkpoints safely."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import skimage.data

from hematovision.io.images import to_model_input
from hematovision.model.backbones import BACKBONES
from hematovision.model.efficientnet_lite import build_lite_imagenet, lite_weights_path
from hematovision.model.lite0 import build_lite0_imagenet, lite0_weights_path
from hematovision.model.mobilenet_v2 import (
    build_mobilenet_v2_imagenet,
    mobilenet_v2_weights_path,
)
from hematovision.model.torch_state_dict import UnsafeCheckpointError, load_legacy_state_dict

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967

# backbone → the ImageNet classifier built at its training resolution
PORTS = {
    "lite0": build_lite0_imagenet,
    "lite1": lambda: build_lite_imagenet("lite1"),
    "lite2": lambda: build_lite_imagenet("lite2"),
    "mobilenetv2": build_mobilenet_v2_imagenet,
}
WEIGHTS = {
    "lite0": lite0_weights_path,
    "lite1": lambda: lite_weights_path("lite1"),
    "lite2": lambda: lite_weights_path("lite2"),
    "mobilenetv2": mobilenet_v2_weights_path,
}


@pytest.fixture(scope="module")
def imagenet_models():
    return {}


def _model(cache: dict, backbone: str):
    if backbone not in cache:
        cache.clear()  # one network in memory at a time
        cache[backbone] = PORTS[backbone]()
    return cache[backbone]


# Minimum probability on the right classes: Lite1 is the least sure of the coffee (0.45).
@pytest.mark.parametrize("backbone,photo,expected,least", [
    ("lite0", "chelsea", CATS, 0.5), ("lite0", "coffee", {ESPRESSO}, 0.5),
    ("lite1", "chelsea", CATS, 0.5), ("lite1", "coffee", {ESPRESSO}, 0.35),
    ("lite2", "chelsea", CATS, 0.5), ("lite2", "coffee", {ESPRESSO}, 0.5),
    ("mobilenetv2", "chelsea", CATS, 0.5), ("mobilenetv2", "coffee", {ESPRESSO}, 0.5),
])
def test_port_classifies_natural_photos(imagenet_models, backbone, photo, expected, least):
    model = _model(imagenet_models, backbone)
    image = to_model_input(getattr(skimage.data, photo)(), model.input_shape[1])
    probabilities = model.predict(image[None], verbose=0)[0]
    assert int(np.argmax(probabilities)) in expected
    assert probabilities[list(expected)].sum() > least


def test_every_offline_backbone_has_a_port():
    assert {name for name, b in BACKBONES.items() if b.offline} == set(PORTS)


# backbone → (its first convolution, that layer's kernel in the checkpoint)
FIRST_CONV = {
    "lite0": ("stem_conv", "_conv_stem.weight"),
    "lite1": ("stem_conv", "_conv_stem.weight"),
    "lite2": ("stem_conv", "_conv_stem.weight"),
    "mobilenetv2": ("Conv1", "features.0.0.weight"),
}


@pytest.mark.parametrize("backbone", sorted(FIRST_CONV))
def test_classifier_gets_the_offline_weights_and_names_its_layers(backbone):
    from hematovision.model.backbones import get_backbone
    from hematovision.model.network import build_classifier, set_fine_tuning

    spec = get_backbone(backbone)
    model = build_classifier(backbone, 3, input_size=64, pretrained=True)
    layer, key = FIRST_CONV[backbone]
    kernel = load_legacy_state_dict(WEIGHTS[backbone]())[key].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer(layer).get_weights()[0], kernel)
    names = [layer.name for layer in model.layers]
    assert spec.gradcam_layer in names and spec.last_block in names
    assert 0 < set_fine_tuning(model, spec.fine_tune_from) < len(model.weights)


def test_mobilenet_v2_pads_stride_two_symmetrically_as_pytorch():
    """Conv1 against a direct PyTorch-style convolution: pad 1 on all sides, stride 2."""
    import keras

    from hematovision.model.mobilenet_v2 import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        MOBILENET_V2_SHA256,
        mobilenet_v2_features,
    )

    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, mobilenet_v2_features(inputs))
    state = load_legacy_state_dict(mobilenet_v2_weights_path(), MOBILENET_V2_SHA256)
    weight = state["features.0.0.weight"]  # (32, 3, 3, 3), OIHW
    model.get_layer("Conv1").set_weights([weight.transpose(2, 3, 1, 0)])
    image = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    conv = keras.Model(inputs, model.get_layer("Conv1").output)
    actual = conv.predict(image, verbose=0)[0]
    x = (image[0] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((8, 8, 32))
    for i in range(8):
        for j in range(8):
            patch = x[2 * i:2 * i + 3, 2 * j:2 * j + 3, :]  # (kh, kw, in)
            expected[i, j] = np.einsum("hwc,ochw->o", patch, weight)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backbone", sorted(WEIGHTS))
def test_checkpoint_checksum_is_enforced(backbone):
    with pytest.raises(ValueError, match="sha256"):
        load_legacy_state_dict(WEIGHTS[backbone](), expected_sha256="0" * 64)


def test_unpickler_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        pickle.dump({"weight": Exploit()}, handle, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_legacy_state_dict(path)


def test_train_offers_every_registered_backbone_without_loading_tensorflow():
    script = (
        "import sys\n"
        "from hematovision.model.backbones import list_backbones\n"
        "from hematovision.cli.parser import build_parser\n"
        "base = ['train', '--data', 'cells', '--out', 'model', '--backbone']\n"
        "for name in list_backbones():\n"
        "    assert build_parser().parse_args(base + [name]).backbone == name\n"
        "print(','.join(list_backbones()), 'tensorflow' in sys.modules or 'keras' in sys.modules)\n"
        "build_parser().parse_args(base + ['resnet'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    choices, heavy = result.stdout.split()
    assert {"lite0", "lite1", "lite2", "b0", "mobilenetv2"} <= set(choices.split(","))
    assert heavy == "False"
    assert result.returncode == 2 and "resnet" in result.stderr  # argparse refuses it
