"""HematoVision: classify white blood cells in microscope images and show why.

The package's rooms are named by kind: ``io`` (what comes in), ``model`` (the model and
its one seam, ``Classifier``), ``train``, ``adapt``, ``explain``, ``measure``, ``report``
and ``cli``; ``errors`` holds the errors a user can fix. README's "How it is built" lists
what each module holds.
"""
