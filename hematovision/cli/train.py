"""``hematovision train``: train a model on folders of class folders."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from hematovision.cli.evaluate import run as run_evaluate
from hematovision.cli.options import class_list, count, new_model_folder, quiet_option, share

__all__ = ["add", "run"]


def run(args) -> int:
    """Train a model into ``--out``, then evaluate it on its test split."""
    from hematovision.io.dataset import SplitFractions
    from hematovision.train.pipeline import CAMERA_AUGMENTATION, Augmentation, strong_colour
    from hematovision.train.training import TrainingConfig, continued_network, train

    augmentation = replace(CAMERA_AUGMENTATION if args.camera_augmentation else Augmentation(),
                           colour_transfer=args.colour_transfer, tight_crop=args.tight_crops)
    if args.strong_colour:
        augmentation = strong_colour(augmentation)
    # A continued run takes the network of the model it continues, unless told otherwise.
    network = continued_network(args.init_from) if args.init_from else {}
    config = TrainingConfig(
        backbone=args.backbone or network.get("backbone", "lite0"),
        input_size=network.get("input_size", TrainingConfig.input_size),
        pretrained=not args.no_pretrained,
        head_epochs=args.head_epochs, fine_tune_epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, limit_per_class=args.limit_per_class,
        hidden_units=(args.hidden_units if args.hidden_units is not None
                      else network.get("hidden_units", 0)),
        fine_tune_from=args.fine_tune_from,
        train_batchnorm=args.train_batchnorm, mix_style=args.mix_style,
        style_noise=args.style_noise,
        fractions=SplitFractions(*args.split),
        classes=class_list(args.classes) if args.classes else None,
        init_from=args.init_from, average_with=tuple(args.average_with or ()),
        fine_tune_learning_rate=args.learning_rate, review_catch=args.review_catch,
        augmentation=augmentation,
    )
    with new_model_folder(args.out, args.overwrite, args.init_from) as folder:
        card = train(args.data, folder, config, name=Path(args.out).name,
                     progress=not args.quiet)
    print(f"saved {args.out}/model.keras (temperature {card.config.temperature:.3f})")
    if args.no_evaluate:
        return 0
    if not sum(card.results.data["counts"]["test"].values()):
        print("no evaluation: the test split is empty (too few images per class)")
        return 0
    return run_evaluate(argparse.Namespace(model=args.out, data=list(args.data), all=False,
                                           quiet=args.quiet, bootstrap=1000, explanations=False))


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    from hematovision.model.backbones import BACKBONES  # metadata only, no TensorFlow
    from hematovision.model.calibration import REVIEW_CATCH  # numpy and scipy only

    train = command("train", "train a model on a folder of class folders",
                    "Train a classifier on a folder of class folders (PBC, the Kaggle "
                    "blood-cells layout, or your own): backbone frozen first, then its top "
                    "blocks fine-tuned. Writes the model, its card, split and logs to --out.")
    train.add_argument("--data", required=True, nargs="+",
                       help="one or more folders of class folders (PBC, Kaggle, …), each a "
                            "source: split on its own, and with several, batches balanced "
                            "over classes and then sources; a source may lack classes")
    train.add_argument("--camera-augmentation", action="store_true",
                       help="also imitate other cameras in phase two: resolution loss, "
                            "white balance and vignetting")
    train.add_argument("--colour-transfer", type=share(), default=0.0, metavar="CHANCE",
                       help="chance that a training picture takes another's colour statistics "
                            "(YUV mean and spread, drawn equally from each source; RandStainNA, "
                            "Shen et al. 2022); 0 is off")
    train.add_argument("--tight-crops", type=share(), default=0.0, metavar="CHANCE",
                       help="chance that a training picture keeps only a box around its cell, "
                            "the rest filled with the box edge's colour, as a cell cropped to "
                            "its outline looks once framed (BCCD-style crops); 0 is off")
    train.add_argument("--strong-colour", action="store_true",
                       help="jitter stain, hue, saturation and contrast as far as between "
                            "laboratories' stains (Tellez et al. 2019), and make one picture "
                            "in ten grey")
    train.add_argument("--mix-style", action="store_true",
                       help="mix feature statistics between pictures of a batch after early "
                            "stages while training (MixStyle, Zhou et al. 2021; Lite backbones)")
    train.add_argument("--style-noise", action="store_true",
                       help="draw each picture's feature statistics around its own, as wide as "
                            "they vary over the batch, at the same places (DSU, Li et al. "
                            "2022; Lite backbones)")
    train.add_argument("--out", required=True, help="model folder to create, e.g. models/mine")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a model already in --out")
    offline = [b for b in BACKBONES.values() if b.offline]
    online = [b for b in BACKBONES.values() if not b.offline]
    train.add_argument("--backbone", choices=list(BACKBONES),
                       help="network: " + ", ".join(f"{b.name} ({b.title})" for b in offline)
                            + " with ImageNet weights that ship with HematoVision; "
                            + ", ".join(f"{b.name} ({b.title})" for b in online)
                            + " with weights downloaded on first use (default: lite0, or "
                              "the --init-from model's)")
    train.add_argument("--no-pretrained", action="store_true",
                       help="random backbone weights (otherwise "
                            + ", ".join(b.name for b in online) + " downloads them)")
    train.add_argument("--epochs", type=count(0), default=6,
                       help="fine-tuning epochs (phase 2)")
    train.add_argument("--head-epochs", type=count(0), default=40,
                       help="epochs of the head alone, backbone frozen (phase 1)")
    train.add_argument("--batch-size", type=count(1), default=32, help="images per step")
    train.add_argument("--hidden-units", type=count(0),
                       help="units of a hidden dense layer in the head (default: 0, none; "
                            "or the --init-from model's)")
    train.add_argument("--fine-tune-from", default=None,
                       help="name prefix of the first backbone layer to unfreeze, e.g. "
                            "block4_ (default: the backbone's top blocks)")
    train.add_argument("--train-batchnorm", action="store_true",
                       help="let the unfrozen blocks' BatchNorm layers learn the cells' "
                            "statistics in phase two (default: frozen at ImageNet's)")
    train.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                       metavar=("TRAIN", "VAL", "TEST"), help="shares of the three splits")
    train.add_argument("--classes", help="comma-separated classes to use (default: all found)")
    train.add_argument("--limit-per-class", type=count(1),
                       help="use at most N images per class (for quick trials)")
    train.add_argument("--seed", type=int, default=1234, help="random seed")
    train.add_argument("--learning-rate", type=float, default=3e-4,
                       help="peak fine-tuning learning rate (cosine decay)")
    train.add_argument("--review-catch", type=share(zero=False), default=REVIEW_CATCH,
                       help="share of validation errors the Review threshold must catch")
    train.add_argument("--init-from", help="continue fine-tuning this trained model folder")
    train.add_argument("--average-with", nargs="+", metavar="MODEL",
                       help="start from the mean of the --init-from model's weights and these "
                            "models' (a model soup: models fine-tuned from one start, on the "
                            "same split); with --epochs 0 the mean is the new model")
    train.add_argument("--no-evaluate", action="store_true", help="skip the test-split evaluation")
    quiet_option(train)
    train.set_defaults(run=run)
