"""``hematovision explain``: save a map of why the model chose a class."""

from __future__ import annotations

import sys
from pathlib import Path

from hematovision.cli.options import model_option, share, writable

__all__ = ["add", "run"]


def run(args) -> int:
    """Save the cell beside one method's map, with a colour key."""
    from hematovision.explain.explanation import explain
    from hematovision.explain.overlay import (
        colour_scale,
        compose_panel,
        greyed,
        overlay,
        overlay_signed,
        to_png,
    )
    from hematovision.explain.registry import get_explainer
    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier

    writable(args.out)
    if args.heatmap:
        writable(args.heatmap)
    classifier = Classifier(args.model)
    image = read_image(args.image)
    # Framed and classified once; the explainer reuses both instead of doing them again.
    box = classifier.frame(image)
    prediction = classifier.predict_inputs(classifier.prepare(image, box)[None], [box])[0]
    if args.class_name is None:
        class_index = classifier.classes.index(prediction.label)
    elif args.class_name.lower() in classifier.classes:
        class_index = classifier.classes.index(args.class_name.lower())
    else:
        raise ValueError(f"unknown class {args.class_name!r}; the model knows: "
                         f"{', '.join(classifier.classes)}")
    method = get_explainer(args.method)
    settings = {}
    if args.layer:
        if "layer" not in method.defaults:
            raise ValueError(f"--layer applies to gradcam and gradcampp, not {args.method}")
        settings["layer"] = args.layer
    result = explain(args.method, image, classifier, class_index, box=box, **settings)
    if result.signed is not None:
        shown = overlay_signed(image, result.signed, args.opacity, method.signed_colormap)
        key = (colour_scale(method.signed_colormap, signed=True),
               f"against  <  neutral  >  for {result.class_name}")
    else:
        shown = overlay(image, result.heatmap, args.opacity, args.colormap)
        key = (colour_scale(args.colormap), f"none  >  strong evidence for {result.class_name}")
    if result.faint:
        shown, key = greyed(shown), (greyed(key[0]), "greyed: too little probability")
    title = (f"{Path(args.image).name}: {method.title} for {result.class_name} "
             f"({100 * result.probability:.1f} %; predicted {prediction.answer}, "
             f"{prediction.status})")
    panel = compose_panel([("original", image), (method.title, shown)], title=title,
                          tile_size=384, keys=[None, key])
    Path(args.out).write_bytes(to_png(panel))
    if args.heatmap:
        import numpy as np

        np.save(args.heatmap, result.heatmap)
    print(f"{title}; {result.seconds:.2f} s → {args.out}")
    if result.faint:
        print(result.faint)
    if prediction.unfamiliar_reason:
        print(f"warning: Unfamiliar image ({prediction.unfamiliar_reason}); the answer and "
              "its map are not to be trusted", file=sys.stderr)
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    from hematovision.explain.overlay import COLORMAPS
    from hematovision.explain.registry import available_methods  # metadata only

    explain = command("explain", "save a map of why the model chose a class",
                      "Save a picture of the cell beside a map of what made the model lean "
                      "towards a class: gradcam and gradcampp (Grad-CAM++) follow the "
                      "network's gradients and take a fraction of a second; lime and shap "
                      "hide patches of the cell and take seconds.")
    explain.add_argument("image", help="one image file")
    explain.add_argument("--method", default="gradcam",
                         choices=[method.name for method in available_methods()],
                         help="explanation method")
    explain.add_argument("--class", dest="class_name", help="class to explain (default: predicted)")
    explain.add_argument("--out", required=True, help="PNG file to write")
    model_option(explain)
    explain.add_argument("--opacity", type=share(), default=0.5,
                         help="how strongly the map covers the cell (0 to 1)")
    explain.add_argument("--colormap", default="jet", choices=COLORMAPS,
                         help="colours of the Grad-CAM maps (LIME always uses green for, "
                              "pink against; SHAP red for, blue against)")
    explain.add_argument("--heatmap", help="also save the raw [0, 1] heatmap as .npy")
    explain.add_argument("--layer", help="Grad-CAM on another layer of the network (slow: "
                         "loads TensorFlow); default: the model card's layer")
    explain.set_defaults(run=run)
