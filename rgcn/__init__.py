"""Text encoder, fusion heads, CRF, metrics and training for multimodal NER.

Importing the package is cheap: submodules are imported where they are used.
"""
__version__ = "0.1.0"
