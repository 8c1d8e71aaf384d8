"""The Keras port of EfficientNet-Lite0 must recognise natural photos as ImageNet does."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import skimage.data

from hematovision.images import to_model_input
from hematovision.lite0 import build_lite0_imagenet, lite0_weights_path
from hematovision.torch_state_dict import UnsafeCheckpointError, load_legacy_state_dict

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def imagenet_model():
    return build_lite0_imagenet()


@pytest.mark.parametrize("photo,expected", [("chelsea", CATS), ("coffee", {ESPRESSO})])
def test_port_classifies_natural_photos(imagenet_model, photo, expected):
    image = to_model_input(getattr(skimage.data, photo)())
    probabilities = imagenet_model.predict(image[None], verbose=0)[0]
    assert int(np.argmax(probabilities)) in expected
    assert probabilities[list(expected)].sum() > 0.5


def test_checkpoint_checksum_is_enforced():
    with pytest.raises(ValueError, match="sha256"):
        load_legacy_state_dict(lite0_weights_path(), expected_sha256="0" * 64)


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
