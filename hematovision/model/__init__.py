"""The model: its backbones, its network, its card, and the one seam that loads and runs it.

- ``backbones``: the feature extractors, a registry of light metadata whose entries name
  their builders in ``backbone_builders``;
  ``efficientnet_lite``, ``mobilenet_v2`` (with ``lite0``, Lite0's old names) and
  ``torch_state_dict`` rebuild them and read their ImageNet weights; ``style_mixing`` is
  MixStyle, a layer used while training;
- ``network``: backbone → head → temperature, as a Keras graph;
- ``classifier``: load once, predict a batch; ``prediction``: one cell's answer and status;
- ``runtime``: the LiteRT runner; ``export``: writing it beside a saved model;
- ``card`` and ``card_markdown``: what a model folder says about itself (a typed config
  the weights need, and the results measured on them); ``store``: where models live;
- ``calibration``: temperature and the Review threshold; ``familiarity``: the Unfamiliar
  statistics.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "backbones": ("Backbone", "BACKBONES", "get_backbone", "list_backbones"),
    "classifier": ("Classifier", "ModelFileError"),
    "prediction": ("Prediction", "CONFIDENT", "REVIEW", "UNFAMILIAR"),
    "card": ("ModelCard", "ModelConfig", "ModelResults", "load_card", "save_card", "CARD_FILE"),
    "store": ("available_models", "default_model_dir", "models_root"),
    "calibration": ("fit_temperature", "fit_review_threshold", "expected_calibration_error"),
    "familiarity": ("Familiarity", "fit_familiarity", "load_familiarity"),
    "network": ("build_classifier",),
    "export": ("add_fast_runtime",),
})
