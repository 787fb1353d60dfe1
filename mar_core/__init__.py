"""MAR: mask-guided feature and relation-based knowledge distillation for object detectors.

This package must stay importable without torch at its top level: the API imports
``mar_core.spec`` and ``mar_core.names`` only.
"""

__version__ = "0.1.0"
