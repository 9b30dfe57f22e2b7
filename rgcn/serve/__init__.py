"""The tagging web service: ``python -m rgcn serve --run RUN``.

A FastAPI app (:mod:`.app`) over the tagging API (:func:`rgcn.load_tagger`): ``POST /tag``
and ``POST /tag/batch`` (JSON), a page at ``/`` (server-rendered, every asset served by the
app), ``/health``, and OpenAPI docs at ``/docs`` whose assets are served locally.
Concurrent requests are micro-batched into the model (:mod:`.batcher`); uploads and image
paths are checked before any model sees them (:mod:`.images`). The web layer holds no model
logic: request parsing, limits and rendering only.

Importing this package is cheap; :mod:`.app` imports FastAPI.
"""
