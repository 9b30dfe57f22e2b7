"""The explorer's run tags with the options of the program that hosts it: ``python -m rgcn
serve --index ... --data ...`` hands its --device, head options (--view, --head-option) and
--constrained to the re-tagger it loads for the mounted explorer."""
from __future__ import annotations

import argparse

from .conftest import decided  # noqa: F401  (the fixture)


def serve_args(*argv: str) -> argparse.Namespace:
    from rgcn.serve.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_the_mounted_explorer_loads_its_run_with_the_services_options(decided, tmp_path, monkeypatch):  # noqa: F811
    import rgcn.api
    import tests.colour  # noqa: F401  (registers the test_colour embedder)
    from rgcn.serve.cli import explorer_of

    real, calls = rgcn.api.load_tagger, []

    def recording(run, **kw):
        calls.append(kw)
        return real(run, **{**kw, "head_options": None})          # the rgcn head has no view to change

    monkeypatch.setattr(rgcn.api, "load_tagger", recording)
    argv = ["--run", str(decided["run"]), "--images", str(decided["images"]), "--device", "cpu",
            "--index", str(decided["index"]), "--data", *map(str, decided["files"].values()), "--k", "3",
            "--relations", "inter", "intra", "--cache", str(tmp_path), "--quiet"]
    args = serve_args(*argv)
    args.constrained = False                                        # what rgcn's --no-constrained sets
    ex = explorer_of(args, {"view": "text"})
    assert calls[-1]["device"] == "cpu" and calls[-1]["head_options"] == {"view": "text"}
    assert calls[-1]["constrained"] is False and ex.retagger.run.model.constrained is False
    plain = explorer_of(serve_args(*argv))
    assert calls[-1]["head_options"] is None and calls[-1]["constrained"] is None
    assert plain.retagger.fingerprint != ex.retagger.fingerprint     # other options: other cached predictions
