"""The ``hematovision`` command: one module per command, a thin ``main``.

Each command's module (``predict``, ``explain``, ``report``, ``train``, ``evaluate``,
``adapt``, ``export``, ``familiarity``, ``review_threshold``, ``foreign``) has
``add(command)``, its options, and ``run(args)``; ``parser`` gathers them, ``options``
holds what they share, and ``entry.main`` runs one and says errors in a line.
"""

from hematovision.cli.entry import main

__all__ = ["main"]
