"""Why the model chose a class: explanation methods with one signature, in a registry.

- ``registry``: the methods as light metadata (name, title, settings, ``module:function``);
- ``explanation``: ``explain(method, image, classifier, class_index)``, one map at the
  picture's size;
- ``gradcam`` (and ``gradcam_keras``, the TensorFlow path), ``lime_map``, ``shap_map``,
  with ``coalitions`` and ``superpixels`` beneath LIME and SHAP;
- ``overlay``: heatmaps over the cell, colour keys, panels (pure numpy and Pillow).
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "registry": ("Explainer", "Setting", "EXPLAINERS", "available_methods", "register",
                 "get_explainer"),
    "explanation": ("Explanation", "explain", "signed_heatmap", "NO_EVIDENCE", "LOW_EVIDENCE",
                    "faint_reason"),
    "overlay": ("overlay", "overlay_signed", "colour_scale", "compose_panel", "COLORMAPS"),
})
