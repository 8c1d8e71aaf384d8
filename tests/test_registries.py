"""The registries that drive every menu: light to import, and every entry keeps the contract.

Like timm's ``list_models()``, listing the explainers, backbones and tunings imports no
TensorFlow, LIME or SHAP; the command line's choices and the pages' widgets are read from
them, so an entry added here appears everywhere without another edit."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

from hematovision.adapt.tunings import TUNINGS, check_tuning
from hematovision.cli.parser import build_parser
from hematovision.errors import InputError
from hematovision.explain.registry import EXPLAINERS, available_methods, get_explainer
from hematovision.lazy import resolve
from hematovision.model.backbones import BACKBONES, get_backbone

from .conftest import ROOT

HEAVY = ("tensorflow", "keras", "lime", "shap")


def test_listing_every_registry_and_building_the_parser_imports_nothing_heavy():
    code = textwrap.dedent(f"""
        import sys
        from hematovision.explain import available_methods
        from hematovision.model.backbones import list_backbones
        from hematovision.adapt.tunings import TUNINGS
        from hematovision.cli.parser import build_parser
        assert available_methods() and list_backbones() and TUNINGS
        build_parser()
        print("LOADED", sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout


@pytest.mark.parametrize("explainer", available_methods(), ids=lambda e: e.name)
def test_every_explainer_entry_names_functions_that_take_its_settings(explainer):
    assert get_explainer(explainer.name) is explainer
    assert explainer.title and explainer.caption and explainer.how and explainer.reference
    function = resolve(explainer.function)
    parameters = inspect.signature(function).parameters
    assert list(parameters)[:4] == ["model_input", "classifier", "class_index", "progress"]
    assert set(explainer.defaults) == set(list(parameters)[4:])
    if explainer.set_up:
        assert set(explainer.defaults) <= set(inspect.signature(
            resolve(explainer.set_up)).parameters)
    for setting in explainer.settings:  # what the Explain page offers as number boxes
        assert setting.name in explainer.defaults
        assert setting.minimum <= explainer.defaults[setting.name] <= setting.maximum


@pytest.mark.parametrize("target, error", [("hematovision.explain.gradcam", ValueError),
                                           ("hematovision.explain.gradcam:missing",
                                            AttributeError),
                                           ("hematovision.nowhere:f", ModuleNotFoundError)])
def test_a_bad_target_is_an_error(target, error):
    with pytest.raises(error):
        resolve(target)


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="gradcam"):
        get_explainer("occlusion")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_entry_is_complete(name):
    backbone = get_backbone(name)
    assert backbone.name == name and backbone.title and backbone.resolution >= 224
    assert backbone.gradcam_layer and backbone.fine_tune_from and backbone.last_block
    assert backbone.preprocessing and backbone.weight_source
    assert callable(resolve(backbone.builder))
    assert backbone.offline == bool(backbone.weights)
    if backbone.weights:
        assert callable(resolve(backbone.weights))


def test_the_command_line_offers_exactly_what_the_registries_hold():
    parser = build_parser()
    for method in EXPLAINERS:
        assert parser.parse_args(["explain", "x.png", "--out", "y.png", "--method",
                                  method]).method == method
    for name in BACKBONES:
        assert parser.parse_args(["train", "--data", "d", "--out", "o", "--backbone",
                                  name]).backbone == name
    for tuning in TUNINGS:
        assert parser.parse_args(["adapt", "--data", "d", "--tuning", tuning]).tuning == tuning
    with pytest.raises(SystemExit):
        parser.parse_args(["explain", "x.png", "--out", "y.png", "--method", "occlusion"])


def test_an_unknown_tuning_is_an_error_the_user_can_fix():
    check_tuning("last-layer")
    with pytest.raises(InputError, match="last-block"):
        check_tuning("everything")


PACKAGES = sorted(path.parent.name for path in (ROOT / "hematovision").glob("*/__init__.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_of_a_sub_package_is_its_module_s_own(package):
    module = importlib.import_module(f"hematovision.{package}")
    assert module.__doc__ and module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if home and home.startswith("hematovision."):
            assert name in importlib.import_module(home).__all__, (package, name)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
