import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from retrieval.graphs import RELATIONS, knn_edges, merge_graphs, relation_graph, relation_id, to_networkx
from retrieval.search import search


def test_knn_edges_on_six_points(six):
    D, I = search(six, six.embeddings, 2, exclude_ids=six.ids)
    ei, ew, et = knn_edges(D, I, relation=1)
    # neighbour -> center, query by query, best first
    assert ei.tolist() == [[1, 2, 0, 2, 1, 0, 4, 2, 3, 2, 4, 3],
                           [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]]
    assert et.tolist() == [1] * 12 and ew.dtype == torch.float32
    assert ew[0].item() == pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)


def test_threshold_drops_weak_edges(six):
    D, I = search(six, six.embeddings, 2, exclude_ids=six.ids)
    ei, ew, et = knn_edges(D, I, threshold=0.45)
    # cos 60 = .5 kept (p3 <- p2); cos 70 (p4 <- p2), 80 and 90 (both of p5's) dropped
    assert ei.tolist() == [[1, 2, 0, 2, 1, 0, 4, 2, 3],
                           [0, 0, 1, 1, 2, 2, 3, 3, 4]]
    assert (ew >= 0.45).all()


def test_padding_centers_and_symmetric():
    D = np.array([[0.9, -np.inf], [0.5, 0.4]], np.float32)
    I = np.array([[7, -1], [8, 9]])
    ei, ew, et = knn_edges(D, I, centers=np.array([100, 101]), symmetric=True, relation=2)
    assert ei.tolist() == [[7, 8, 9, 100, 101, 101], [100, 101, 101, 7, 8, 9]]
    assert ew.tolist() == pytest.approx([0.9, 0.5, 0.4, 0.9, 0.5, 0.4])
    assert et.tolist() == [2] * 6


def test_empty_edges_have_the_right_shapes():
    ei, ew, et = knn_edges(np.zeros((0, 3)), np.zeros((0, 3), int))
    assert ei.shape == (2, 0) and ew.shape == (0,) and et.shape == (0,)


def test_relation_graph_star():
    c = np.array([1.0, 0.0])
    nb = np.array([[0.0, 1.0], [1.0, 1.0]])
    g = relation_graph(c, nb, [0.3, 0.7], relation_id("intra"), neighbour_ids=["a", "b"])
    assert g.num_nodes == 3 and g.x.shape == (3, 2)
    assert g.edge_index.tolist() == [[1, 2, 0, 0], [0, 0, 1, 2]]
    assert g.edge_weight.tolist() == pytest.approx([0.3, 0.7, 0.3, 0.7])
    assert g.edge_type.tolist() == [1] * 4 and g.has_image.tolist() == [True]
    one_way = relation_graph(c, nb, [0.3, 0.7], 0, symmetric=False)
    assert one_way.edge_index.tolist() == [[1, 2], [0, 0]]


def test_post_without_image_gets_an_empty_flagged_graph():
    g = relation_graph(None, np.zeros((0, 4)), [], RELATIONS["intra"], has_image=False, dim=4)
    assert g.num_nodes == 1 and g.edge_index.shape == (2, 0)
    assert g.x.tolist() == [[0.0] * 4] and g.has_image.tolist() == [False]


def test_graphs_batch_and_merge():
    a = relation_graph(np.ones(2), np.eye(2), [0.5, 0.6], 0)
    b = relation_graph(None, np.zeros((0, 2)), [], 1, has_image=False, dim=2)
    batch = Batch.from_data_list([a, b])
    assert batch.num_nodes == 4 and batch.has_image.tolist() == [True, False]
    assert batch.edge_index.max().item() == 2
    m = merge_graphs([a, relation_graph(np.ones(2), np.eye(2)[:1], [0.9], 1)])
    assert m.num_nodes == 4
    assert m.edge_index.tolist() == [[1, 2, 0, 0, 3, 0], [0, 0, 1, 2, 0, 3]]
    assert m.edge_type.tolist() == [0, 0, 0, 0, 1, 1]


def test_to_networkx():
    g = relation_graph(np.ones(2), np.eye(2), [0.5, 0.6], 2, neighbour_ids=["x", "y"])
    nxg = to_networkx(g)
    assert nxg.nodes[1]["name"] == "x" and nxg.nodes[0]["name"] == "post"
    assert nxg.edges[2, 0] == {"weight": pytest.approx(0.6), "relation": "tags"}
    assert nxg.graph["has_image"] is True


def test_unknown_relation_lists_valid_names():
    with pytest.raises(KeyError, match="inter, intra, tags"):
        relation_id("visual")
