"""Training a model on folders of class folders (two phases, then calibration).

- ``training``: ``train(data, out, TrainingConfig())``, the whole run;
- ``phases``: the head on cached features, then fine-tuning the top blocks;
- ``sources``: each training folder scanned and split on its own;
- ``sampling`` (batches balanced over classes and sources) and ``pipeline`` (tf.data,
  augmentation);
- ``finish``: what a trained folder gets later: familiarity statistics, a refitted Review
  threshold.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "training": ("TrainingConfig", "train"),
    "finish": ("add_familiarity", "fit_review"),
    "pipeline": ("Augmentation", "CAMERA_AUGMENTATION"),
})
