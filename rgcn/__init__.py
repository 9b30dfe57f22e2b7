"""Text encoder, fusion heads, CRF, metrics and training for multimodal NER.

Importing the package is cheap: submodules are imported where they are used.
"""
__version__ = "0.1.0"


def __getattr__(name):
    """``from rgcn import load_tagger`` without importing torch when ``rgcn`` is imported."""
    if name in ("load_tagger", "PostTagger", "TagResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
