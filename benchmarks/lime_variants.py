"""Which LIME fit keeps its fidelity at 250 samples: the library's, or the map's default.

    python benchmarks/lime_variants.py [--cells 8] [--seeds 6]

On the middle held-out cell of each class, for several seeds, each variant's 250-sample
weights are compared (Spearman over the map's pixels, as in ``benchmarks/explain.py``) with
LIME's own random sampling at 5,000 samples, fitted to the same quantity:

- probability, random masks: the library (``LimeImageExplainer``);
- log-odds, random masks;
- log-odds, antithetic mask pairs: the dashboard's default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from explain import middle_cells  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from hematovision.explain import get_explainer  # noqa: E402
from hematovision.explain.lime_map import fit_lime, lime_samples  # noqa: E402
from hematovision.explain.superpixels import segment_cell  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.dataset import test_split_files  # noqa: E402
from hematovision.io.images import read_image  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402

VARIANTS = {"probability, random masks": ("identity", False),
            "log-odds, random masks": ("logit", False),
            "log-odds, mask pairs (default)": ("logit", True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(datasets_dir() / "pbc"))
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    classifier = Classifier(args.model)
    defaults = get_explainer("lime").defaults
    results = {name: [] for name in VARIANTS}
    temperature = classifier.card.config.temperature
    for path in middle_cells(test_split_files(args.model, args.data), args.cells):
        x = classifier.prepare(read_image(path))
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        segmentation = segment_cell(x, defaults["segments"], defaults["compactness"])

        def fitted(scored, link, seed=0, index=index, segmentation=segmentation):
            return fit_lime(scored, index, link, temperature, seed)[segmentation].ravel()

        # One set of model calls serves both fits: they differ only in what is fitted.
        reference = lime_samples(x, classifier, segmentation, 5000, seed=123)
        references = {link: fitted(reference, link) for link in ("identity", "logit")}
        runs = {antithetic: [lime_samples(x, classifier, segmentation, defaults["samples"],
                                          seed, antithetic) for seed in range(args.seeds)]
                for antithetic in (False, True)}
        for name, (link, antithetic) in VARIANTS.items():
            scores = [spearmanr(fitted(scored, link, seed), references[link]).statistic
                      for seed, scored in enumerate(runs[antithetic])]
            results[name].extend(scores)
            print(f"  {path.parent.name}/{path.name} {name}: "
                  + " ".join(f"{score:.2f}" for score in scores), flush=True)
    for name, scores in results.items():
        scores = np.array(scores)
        print(f"{name}: {int((scores >= 0.9).sum())} of {len(scores)} maps at 0.9 or more, "
              f"worst {scores.min():.2f}, median {np.median(scores):.3f}")


if __name__ == "__main__":
    main()
