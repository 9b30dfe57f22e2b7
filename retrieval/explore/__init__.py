"""The retrieval explorer: a local web app over one collection's relation graphs.

``python -m retrieval explore --index IDX --data train=... valid=... test=... [--run RUN]`` serves
its pages on 127.0.0.1: a post's evidence card (``/post/<id>``) with counterfactual re-tagging,
triage lists, A/B of two graph settings, agreement charts and a 2-D map. Every page's data is
computed by a plain function (:mod:`retrieval.explore.card`, ...), rendered by a thin route, and
answered as JSON with ``?format=json``; any card or list exports as one self-contained HTML file
(:mod:`retrieval.explore.export`).
"""
from .collection import Explorer

__all__ = ["Explorer"]
