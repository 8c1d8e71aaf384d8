"""``hematovision export``: add the fast LiteRT runtime to a model folder."""

from __future__ import annotations

from hematovision.cli.options import model_option

__all__ = ["add", "run"]


def run(args) -> int:
    """Write the LiteRT runtime beside the model."""
    from hematovision.model.export import add_fast_runtime

    config = add_fast_runtime(args.model).config
    print(f"wrote {args.model}/{config.runtime_file} (sha256 {config.runtime_sha256[:12]}…)")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    export = command("export", "add the fast LiteRT runtime to a model folder")
    model_option(export, required=True)
    export.set_defaults(run=run)
