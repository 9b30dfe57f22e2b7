"""A tiny synthetic collection for the explorer's tests: 38 posts of three kinds
(tests/colour.py's ``write_kinds``: the photo's colour decides an ``image_decided`` name's
type), their mean-colour index, and an :class:`~retrieval.explore.Explorer` over its graphs
(k=3, every relation). One training photo is a byte copy of another (a same-file-hash
near-duplicate)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retrieval.cache import GraphSettings

DUPLICATE = ("train-image_decided-002", "train-image_decided-000")
"""(post, post whose photo it is a byte copy of)."""


def read_splits(files: dict, images=None) -> dict:
    from data.corpus import read_corpus

    return {name: read_corpus(path, images) for name, path in files.items()}


def build_collection(root: Path, factory: str | None = None) -> dict:
    """``write_kinds`` under ``root/data`` (one duplicate photo) and its index at ``root/index``;
    returns the split files."""
    from index.__main__ import main as index_main
    from tests.colour import write_kinds

    files = write_kinds(root / "data")
    images = root / "data" / "images"
    shutil.copyfile(images / f"{DUPLICATE[1]}.png", images / f"{DUPLICATE[0]}.png")
    extra = ["--factory", factory] if factory else []
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(images),
                       "--data", *files.values(), "--out", str(root / "index"), *extra]) == 0
    return files


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    """``{"root", "files", "images", "index"}`` of the tiny collection."""
    import tests.colour  # noqa: F401  (registers the test_colour embedder)

    root = tmp_path_factory.mktemp("explore")
    files = build_collection(root)
    return {"root": root, "files": files, "images": root / "data" / "images", "index": root / "index"}


def make_explorer(collection, settings: GraphSettings | None = None, retagger=None, **kw):
    from index.artifact import load_index
    from retrieval.explore import Explorer

    return Explorer.build(read_splits(collection["files"], collection["images"]), load_index(collection["index"]),
                          settings or GraphSettings(k=3), collection["root"] / "graphs",
                          images=collection["images"], retagger=retagger, **kw)


@pytest.fixture(scope="session")
def explorer(collection):
    return make_explorer(collection)


def rows_of(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


# --------------------------------------------------------------------------- a trained run
DECIDED_SIZES = (("train", 48), ("valid", 8), ("test", 16))


@pytest.fixture(scope="session")
def decided(tmp_path_factory, tiny_encoder):
    """An image-decided set (tests/colour.py: a red photo makes the name PER, a blue one LOC),
    its mean-colour index and a tiny rgcn run trained on it (k=3 inter and intra neighbours,
    8 epochs, seed 0; it types the test names by their photos):
    ``{"root", "files", "images", "index", "run"}``."""
    from index.__main__ import main as index_main
    from tests.colour import train_colour_run, write_image_decided

    root = tmp_path_factory.mktemp("explore_decided")
    files = write_image_decided(root / "data", sizes=DECIDED_SIZES)
    images = root / "data" / "images"
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(images),
                       "--data", *files.values(), "--out", str(root / "index")]) == 0
    train_colour_run(root, files, tiny_encoder, "rgcn", 8, "head.name=rgcn", f"head.options.index={root / 'index'}",
                     "head.options.k=3", "head.options.gcn_hidden=16", "head.options.dropout=0.0")
    return {"root": root, "files": files, "images": images, "index": root / "index", "run": root / "runs" / "rgcn"}


@pytest.fixture(scope="session")
def retagger(decided):
    from retrieval.explore.counterfactual import load_retagger

    return load_retagger(decided["run"], images=decided["images"])


@pytest.fixture
def decided_explorer(decided, retagger, tmp_path):
    """An explorer over the image-decided set with the run, its counterfactual cache in ``tmp_path``."""
    from index.artifact import load_index
    from retrieval.explore import Explorer

    ex = Explorer.build(read_splits(decided["files"], decided["images"]), load_index(decided["index"]),
                        GraphSettings(k=3, relations=("inter", "intra")), decided["root"] / "graphs",
                        images=decided["images"], retagger=retagger)
    ex.cache_dir = str(tmp_path / "cache")
    return ex


def explore_process(args: list, log=None):
    """``python -m retrieval explore ARGS`` on a free loopback port, stopped by its pid (a
    :class:`benchmarks.serve_process.ServeProcess` waiting on ``/health``)."""
    from benchmarks.serve_process import ServeProcess

    return ServeProcess(args, imports=("tests.colour",), log=log, module="retrieval", command="explore")
