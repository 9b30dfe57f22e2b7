"""The ground floor: posts, their spans and tokens, names of pretrained weights, errors, and
the demo. Every other package imports from here; this one imports none of them.

- posts: reading and writing corpora (:mod:`data.corpus`), preparing a collection and its
  images (:mod:`data.prepare`, ``python -m data prepare``);
- spans and tokens: the BIO span rule scoring and retrieval share (:mod:`data.spans`),
  tokenising raw posts as the benchmarks were (:mod:`data.tweets`) and back
  (:mod:`data.detokenize`);
- model names: where pretrained weights come from, offline first (:mod:`data.pretrained`);
- errors and plumbing: the one user-error contract of every command (:mod:`data.errors`),
  logging (:mod:`data.logs`), artifact files (:mod:`data.files`), files a local page may
  show (:mod:`data.web`);
- the demo: the embedded benchmark of tweets with real photos (:mod:`data.demo`, with
  :mod:`data.demo_photos` and :mod:`data.demo_text`).
"""
