"""What a recipe's `model.base` names: a demo model fttool builds, a local directory, or a hub id.

Kept free of heavy imports: the compiler, the runner and the report all classify model references.
"""
from __future__ import annotations

DEMO_MODEL_PREFIX = "demo:"

DEMO_MODELS = ("tiny-llama",)


def is_local_model(base: str) -> bool:
    """A path rather than a hub id: hub ids look like 'org/name' and never start with '.', '/' or '~'."""
    return base.startswith((".", "/", "~"))


def is_demo_reference(base: str) -> bool:
    return base.startswith(DEMO_MODEL_PREFIX)
