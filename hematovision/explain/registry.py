"""The explanation methods as light metadata, in a registry that pages and the CLI read.

Every method answers the same question — which parts of this cell made the model lean
towards class *c*? — as a heatmap in [0, 1], at the image's own size and on the square
the model saw. An entry names its function as ``"module:function"`` and is imported only
when a map is asked for: listing the methods (menus, ``--help``) imports neither
TensorFlow nor the methods' own libraries. Register a new method with :func:`register`;
the contract test runs over every entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hematovision.lazy import resolve

__all__ = ["Explainer", "Setting", "EXPLAINERS", "available_methods", "register",
           "get_explainer"]


@dataclass(frozen=True)
class Setting:
    """A setting a page offers as a number box: its label and range (the default is the
    method's)."""

    name: str
    label: str
    minimum: int
    maximum: int
    step: int
    help: str = ""


@dataclass(frozen=True)
class Explainer:
    """A registered method.

    ``function`` (``"module:function"``) is called as ``function(model_input, classifier,
    class_index, progress, **settings)`` with the ``(size, size, 3)`` model input and
    returns ``(heatmap, signed_or_None)`` on that grid; :meth:`compute` imports and calls it.
    """

    name: str
    title: str
    caption: str  # what the colours mean, in a sentence a student can read beside the map
    defaults: dict
    function: str
    reference: str = ""
    how: str = ""  # how the map is computed, for readers who ask
    signed_colormap: str = "RdBu_r"  # for signed maps: low = against, high = for
    # One-time set-up for a classifier and settings (loading the Keras graph), run before
    # the clock starts: a first map's time should be the method's, not the model's loading.
    set_up: str = ""
    settings: tuple[Setting, ...] = field(default=())  # offered on the Explain page

    def compute(self, *args, **settings):
        """Run the method (see the class docstring)."""
        return resolve(self.function)(*args, **settings)

    def prepare(self, classifier, **settings) -> None:
        """Run the one-time set-up, if the method has one."""
        if self.set_up:
            resolve(self.set_up)(classifier, **settings)


EXPLAINERS: dict[str, Explainer] = {}


def register(explainer: Explainer) -> Explainer:
    EXPLAINERS[explainer.name] = explainer
    return explainer


def available_methods() -> list[Explainer]:
    """Every registered method, in registration order (Grad-CAM first: it is the fastest)."""
    return list(EXPLAINERS.values())


def get_explainer(name: str) -> Explainer:
    try:
        return EXPLAINERS[name]
    except KeyError:
        raise ValueError(
            f"unknown explanation method {name!r}; choose one of: {', '.join(EXPLAINERS)}"
        ) from None


_SUPERPIXELS_HELP = "More patches give a finer map but need more evaluations to settle."

register(Explainer(
    name="gradcam",
    title="Grad-CAM",
    caption=("Colours at the key's \"strong evidence\" end: the region whose features "
             "raise this class's score. Coarse: read it as a region, not fine detail."),
    how=("Where in the last layer of features the evidence for this class sits: the "
         "features are weighted by how much they raise the class score. Coarse (a 7×7 "
         "grid, smoothed), so it shows the region, not fine detail."),
    defaults={"layer": None},
    function="hematovision.explain.gradcam:gradcam_map",
    set_up="hematovision.explain.gradcam:set_up",
    reference="Selvaraju et al. 2017",
))
register(Explainer(
    name="gradcampp",
    title="Grad-CAM++",
    caption=("Like Grad-CAM, but several separate parts of the cell (e.g. nuclear lobes) "
             "can all light up."),
    how=("Like Grad-CAM, but weighting each location by its own positive gradient, so "
         "several separate parts of the cell (e.g. nuclear lobes) can all light up. "
         "Here that means every feature with a positive weight for the class counts, "
         "whatever the class's probability."),
    defaults={"layer": None},
    function="hematovision.explain.gradcam:gradcam_plus_plus_map",
    set_up="hematovision.explain.gradcam:set_up",
    reference="Chattopadhyay et al. 2018",
))
register(Explainer(
    name="lime",
    title="LIME",
    caption=("Green patches make the model surer of this class, pink ones less sure: it "
             "was shown the cell with random patches blurred out."),
    how=("The stained parts of the image are cut into about a dozen patches (the empty "
         "glass is one more); the model scores hundreds of copies with random patches "
         "blurred out. Green patches raise the model's confidence in the class (its "
         "log-odds) when present, pink ones lower it. Patch-shaped by design."),
    defaults={"samples": 250, "segments": 12, "compactness": 10.0, "seed": 0,
              "link": "logit"},
    function="hematovision.explain.lime_map:lime_map",
    reference="Ribeiro et al. 2016",
    signed_colormap="pink-green",
    settings=(Setting("samples", "LIME samples", 50, 5000, 50),
              Setting("segments", "LIME superpixels", 8, 150, 4)),
))
register(Explainer(
    name="shap",
    title="SHAP",
    caption=("Orange patches carry the model's confidence in this class, blue ones count "
             "against it; together they add up to what the cell adds to it."),
    how=("The stained parts of the image are cut into the same dozen or so patches as for "
         "LIME (the empty glass is one more). Each patch's Shapley value is its share of "
         "the model's confidence in the class (its log-odds), estimated by Kernel SHAP "
         "from the same copies as LIME (patches blurred out), weighted by the Shapley "
         "kernel. Orange: evidence for the class; blue: against. Patch-shaped by "
         "design."),
    defaults={"evaluations": 250, "segments": 12, "compactness": 10.0, "seed": 0},
    function="hematovision.explain.shap_map:shap_map",
    reference="Lundberg & Lee 2017",
    signed_colormap="blue-orange",
    settings=(Setting("evaluations", "SHAP evaluations", 50, 5000, 50),
              Setting("segments", "SHAP superpixels", 8, 150, 4, help=_SUPERPIXELS_HELP)),
))
