"""Shared fixtures: the real datasets beside the repository and the shipped model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hematovision.io.data_home import datasets_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DATASETS = datasets_dir()
PBC = DATASETS / "pbc"
ZHENG = DATASETS / "zheng2018_d2"
KAGGLE = DATASETS / "kaggle_bloodcells_sample"
SHIPPED_MODEL = ROOT / "models" / "pbc-lite0"


def pytest_configure(config):
    # Registered here rather than in pyproject.toml, beside the fixtures it sorts.
    config.addinivalue_line(
        "markers", "slow: takes more than about 20 s on two cores (training, adapting, a "
        "browser, a benchmark); `pytest -m \"not slow\"` is the quick loop")
    # The datasets are part of the test set-up (see README); their absence is an error,
    # not a reason to skip.
    if not PBC.is_dir():
        raise pytest.UsageError(f"datasets not found at {DATASETS}; set HEMATOVISION_DATASETS")


# Fixtures that train a model, start a server or a browser, or build a network from
# scratch: every test that asks for one is slow, wherever it is written.
SLOW_FIXTURES = frozenset({"tiny_model", "my_lab", "server", "browser", "imagenet_model",
                           "network"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def classifier():
    from hematovision.model.classifier import Classifier

    return Classifier(SHIPPED_MODEL)


@pytest.fixture(scope="session")
def pbc_examples() -> list[tuple[Path, str]]:
    """Five test-split images per class of the shipped model's recorded split."""
    from hematovision.io.dataset import test_split_files

    files = test_split_files(SHIPPED_MODEL, PBC)
    assert files, "the shipped model's test split is not under the PBC folder"
    chosen, per_class = [], {}
    for path, label in files:
        if per_class.get(label, 0) < 5:
            chosen.append((path, label))
            per_class[label] = per_class.get(label, 0) + 1
    return chosen


def strict_json(path: Path):
    """Read ``path`` as standard JSON: Python writes NaN, which jq and browsers reject."""
    def refuse(constant):
        raise AssertionError(f"{path.name} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def training_folder_with_a_class_of_its_own(folder: Path, copied_from: str = "train") -> Path:
    """PBC's class folders linked into ``folder`` beside a class the shipped model lacks,
    ``smudge``, holding one lymphocyte of the model's ``copied_from`` split."""
    from hematovision.io.dataset import split_files

    for source in PBC.iterdir():
        if source.is_dir():
            (folder / source.name).symlink_to(source, target_is_directory=True)
    (folder / "smudge").mkdir()
    cell = next(path for path, label in split_files(SHIPPED_MODEL, PBC, copied_from)
                if label == "lymphocyte")
    (folder / "smudge" / f"{copied_from}.jpg").write_bytes(cell.read_bytes())
    return folder
