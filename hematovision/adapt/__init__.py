"""Adapting a trained model to one laboratory's cells from a handful of labelled examples.

- ``adaptation``: ``adapt``, ``adaptation_study`` and ``adapt_from_zip`` (the Adapt page);
- ``tunings``: the depths on offer, light metadata for menus; ``tuner``: both depths behind
  one surface;
- ``head``: the last layer refitted (L2-SP); ``last_block``: the last block fine-tuned.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "adaptation": ("adapt", "adaptation_study", "adapt_from_zip", "AdaptationResult"),
    "tunings": ("TUNINGS", "BlockTuning"),
    "head": ("choose_cells", "fit_head"),
})
