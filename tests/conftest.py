"""Shared fixtures: the real datasets beside the repository and the shipped model.

A test that reads the datasets is marked ``data`` (see :func:`pytest_collection_modifyitems`).
Without the datasets those tests are skipped, naming the folder and
``HEMATOVISION_DATASETS``, and the rest run; under CI (``CI=true``) their absence is an
error, so CI can never pass by skipping.
"""

from __future__ import annotations

import inspect
import json
import os
import types
from pathlib import Path

import pytest

from hematovision.io.data_home import datasets_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASETS = datasets_dir()
PBC = DATASETS / "pbc"
ZHENG = DATASETS / "zheng2018_d2"
KAGGLE = DATASETS / "kaggle_bloodcells_sample"
SHIPPED_MODEL = ROOT / "models" / "pbc-lite0"


# What a test that reads the datasets names: a constant above, or the function they come from.
DATA_NAMES = frozenset({"DATASETS", "PBC", "ZHENG", "KAGGLE", "datasets_dir"})


def pytest_configure(config):
    # Registered here rather than in pyproject.toml, beside the fixtures they sort.
    config.addinivalue_line(
        "markers", "slow: takes more than about 20 s on two cores (training, adapting, a "
        "browser, a benchmark); `pytest -m \"not slow\"` is the quick loop")
    config.addinivalue_line(
        "markers", "data: reads the datasets (set automatically for a test, its fixtures or "
        "the test helpers it calls that name one of DATA_NAMES or pass a path under them; "
        "by hand where only the code under test reads them); skipped when they are missing, "
        "an error under CI")
    # CI must never pass by skipping: there the datasets are part of the set-up.
    if _in_ci() and not PBC.is_dir():
        raise pytest.UsageError(f"datasets not found at {DATASETS}; set HEMATOVISION_DATASETS "
                                "(CI is set, so tests that need them may not be skipped)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


# Fixtures that train a model, start a server or a browser, or build a network from
# scratch: every test that asks for one is slow, wherever it is written.
SLOW_FIXTURES = frozenset({"tiny_model", "my_lab", "server", "browser", "imagenet_model",
                           "network"})


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"needs the datasets, not found at {DATASETS}; set "
                                   "HEMATOVISION_DATASETS to the folder that holds pbc/")
    missing = not PBC.is_dir()
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("data") is None and _reads_data(item):
            item.add_marker(pytest.mark.data)
        if missing and item.get_closest_marker("data") is not None:
            item.add_marker(skip)


def _reads_data(item) -> bool:
    """Whether a test, one of its fixtures or a test helper they call names the datasets,
    or a parameter of it is a path under them."""
    functions = [getattr(item, "function", None)]
    # pytest keeps each fixture's function here; there is no public way to reach it.
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    functions += [stack[-1].func for stack in definitions.values() if stack]
    seen: set = set()
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (any(_names_data(function, seen) for function in functions if function)
            or _under_datasets(list(params.values())))


def _names_data(function, seen: set) -> bool:
    """Whether ``function`` (its lambdas and inner functions included), or a function of
    the tests' own that it calls by name, names one of :data:`DATA_NAMES`."""
    function = inspect.unwrap(function)
    if function in seen or not inspect.isfunction(function):
        return False
    seen.add(function)
    names = _code_names(function.__code__)
    if names & DATA_NAMES:
        return True
    # A name imported inside the function (``from .conftest import …``) is not among its
    # globals; the helpers it would name are found here.
    called = (function.__globals__.get(name, globals().get(name)) for name in names)
    return any(_names_data(other, seen) for other in called
               if inspect.isfunction(other) and _in_tests(other))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _code_names(constant)
    return names


def _in_tests(function) -> bool:
    return Path(function.__code__.co_filename).resolve().is_relative_to(HERE)


def _under_datasets(value) -> bool:
    if isinstance(value, (str, Path)):
        return str(value).startswith(str(DATASETS))
    if isinstance(value, (list, tuple, set, dict)):
        values = value.values() if isinstance(value, dict) else value
        return any(_under_datasets(v) for v in values)
    return False


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
