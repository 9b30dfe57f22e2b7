"""The R-GCN head: gate formula, masking of posts without images, and train.py end to end
on a tiny generated demo with a real EfficientNet index."""
import json

import pytest
import torch
from torch import nn

import train
from rgcn.__main__ import main as cli
from data.corpus import Sample
from rgcn.heads import build_head
from rgcn.heads.rgcn import NoImageGraphs, RGCNHead, gated_fusion, without_own_image
from retrieval.graphs import relation_graph, relation_id


class HandGraphs:
    """Two posts: 'a' with an image and two neighbours, 'b' without an image."""

    def __init__(self, dim=6):
        torch.manual_seed(0)
        self.node_features = torch.randn(4, dim)
        self.text_queries = None

    def graph(self, post_id, relation):
        f = self.node_features
        if post_id == "a":
            return relation_graph(f[0], f[1:3], [0.9, 0.5], relation_id(relation), has_image=True)
        if relation == "inter":
            return relation_graph(None, f[3:4], [0.7], relation_id(relation), has_image=False)
        return relation_graph(None, f[:0], [], relation_id(relation), has_image=False, dim=f.shape[1])


def test_gated_fusion_by_hand():
    h = torch.ones(1, 2, 3)
    v = torch.full((1, 3), 2.0)
    gh, gv = nn.Linear(3, 3, bias=False), nn.Linear(3, 3)
    for lin in (gh, gv):
        nn.init.zeros_(lin.weight)
    nn.init.zeros_(gv.bias)
    out = gated_fusion(h, v, gh, gv, torch.tensor([True]))
    assert torch.allclose(out, torch.full((1, 2, 3), 1 + 0.5 * 2.0))   # sigmoid(0) = 0.5
    assert torch.equal(gated_fusion(h, v, gh, gv, torch.tensor([False])), h)


def test_head_shapes_and_no_image_post_ignores_intra():
    head = build_head("rgcn", 8, {"gcn_hidden": 4, "heads": 2, "dropout": 0.0}, {"graphs": HandGraphs()}).eval()
    samples = [Sample("a", ["x", "y", "z"]), Sample("b", ["w"])]
    inputs = head.prepare(samples, training=False)
    assert inputs["intra"].has_image.tolist() == [True, False]
    assert inputs["intra"].num_nodes == 3 + 1
    states = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = head(states, mask, inputs).states
    assert out.shape == (2, 3, 8) and torch.isfinite(out).all()
    # post b's intra graph has no image: changing the (unused) intra features of b changes nothing
    inputs2 = head.prepare(samples, training=False)
    inputs2["intra"].x[3] = 100.0
    assert torch.allclose(head(states, mask, inputs2).states[1], out[1], atol=1e-5)


def test_dropping_the_own_image():
    g = HandGraphs().graph("a", "intra")
    d = without_own_image(g)
    assert d.num_nodes == 1 and d.edge_index.shape == (2, 0) and not d.has_image.item() and d.x.abs().sum() == 0


def test_dropped_posts_keep_their_inter_graph_and_lose_their_intra_graph():
    head = build_head("rgcn", 8, {"gcn_hidden": 4, "heads": 2}, {"graphs": HandGraphs()})
    kept, dropped = (head.prepare([Sample("a", ["x"], meta=m)], training=False) for m in ({}, {"image_dropped": True}))
    assert torch.equal(dropped["inter"].x, kept["inter"].x) and dropped["inter"].num_nodes == 3
    assert dropped["intra"].num_nodes == 1 and not dropped["intra"].has_image.item()


def test_training_with_image_dropout_batches_mixed_graphs():
    graphs = HandGraphs()
    real = graphs.graph

    def with_rows(post_id, relation):          # as retrieval.cache.RelationGraphs does
        d = real(post_id, relation)
        d.neighbour_rows = torch.arange(d.num_nodes - 1)
        return d

    graphs.graph = with_rows
    head = build_head("rgcn", 8, {"gcn_hidden": 4, "heads": 2, "image_dropout": 0.5}, {"graphs": graphs})
    samples = [Sample("a", ["x"]), Sample("a", ["y"], meta={"image_dropped": True}), Sample("b", ["z"])]
    inputs = head.prepare(samples, training=True)
    assert inputs["intra"].has_image.tolist()[1:] == [False, False]
    assert head(torch.randn(3, 1, 8), torch.ones(3, 1, dtype=torch.bool), inputs).states.shape == (3, 1, 8)


def test_no_index_means_featureless_graphs():
    ctx = RGCNHead.setup({"index": None, "feature_dim": 5}, {}, None)
    assert isinstance(ctx["graphs"], NoImageGraphs)
    g = ctx["graphs"].graph("anything", "intra")
    assert g.x.shape == (1, 5) and not g.has_image.item()


def test_unknown_relation_is_rejected():
    with pytest.raises(ValueError, match="relations is empty"):
        build_head("rgcn", 8, {"relations": []}, {"graphs": HandGraphs()})


def test_train_rgcn_end_to_end_on_a_tiny_demo(tmp_path, tiny_encoder):
    from data import demo
    from index.__main__ import main as index_main

    d = tmp_path / "demo"
    demo.generate(d, seed=1, n_train=16, n_valid=6, n_test=6)
    splits = [str(d / f"{s}.jsonl") for s in ("train", "valid", "test")]
    assert index_main(["build", "--quiet", "--images", str(d / "images"), "--data", *splits,
                       "--out", str(tmp_path / "index"), "--workers", "0"]) in (0, None)
    res = train.main(["--no-progress", f"data.train={splits[0]}", f"data.valid={splits[1]}",
                      f"data.test={splits[2]}", f"data.images={d / 'images'}", f"encoder.name={tiny_encoder}",
                      "head.name=rgcn", f"head.options.index={tmp_path / 'index'}", "head.options.k=3",
                      "head.options.gcn_hidden=8", "train.epochs=1", "train.batch_size=8",
                      f"out_dir={tmp_path / 'runs'}", "name=r"])
    assert res["test"]["micro"]["gold"] > 0
    graphs = list((tmp_path / "graphs").glob("*/manifest.json"))
    assert len(graphs) == 1                                     # the graph cache was written
    run = tmp_path / "runs" / "r"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(["evaluate", "--run", str(run), "--split", splits[2], "--drop-images", "--json"]) == 0
    assert json.loads(buf.getvalue())["micro"]["gold"] == res["test"]["micro"]["gold"]
