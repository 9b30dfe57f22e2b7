"""Real-CUDA checks (``-m gpu``; skipped where torch sees no CUDA device): the tagger's forward
and decoding on the GPU against the CPU, faiss-gpu search against the CPU index, weight
averaging on the GPU. ``python benchmarks/gpu_check.py`` runs them on a GPU machine."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def _tagger(tiny_encoder, corpus):
    from rgcn.checkpoint import build_tagger
    from rgcn.config import load_config
    from rgcn.tagger import label_set

    cfg = load_config(None, [f"data.train={corpus}", f"data.valid={corpus}", f"encoder.name={tiny_encoder}",
                             "encoder.dropout=0.0"])
    from data.corpus import read_corpus

    samples = read_corpus(corpus).samples
    labels = label_set(samples)
    torch.manual_seed(0)
    return build_tagger(cfg, labels), samples, labels


def test_tagger_forward_and_decoding_on_cuda_match_the_cpu(tiny_encoder, tiny_corpus_file):
    from rgcn.batching import TaggingDataset

    model, samples, labels = _tagger(tiny_encoder, tiny_corpus_file)
    data = TaggingDataset(samples, model.tokenizer, labels)
    model.eval()
    idx = list(range(len(samples)))
    with torch.no_grad():
        cpu_loss = float(model.forward_loss(model.make_batch(data, idx, training=False)))
        cpu_tags = model.predict(data, 8).tags
        model.to("cuda")
        gpu_loss = float(model.forward_loss(model.make_batch(data, idx, training=False)))
        gpu_tags = model.predict(data, 8).tags
    assert next(model.parameters()).is_cuda
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-3, abs=1e-3)
    assert gpu_tags == cpu_tags


def test_faiss_gpu_search_matches_the_cpu_index():
    faiss = pytest.importorskip("faiss")
    if getattr(faiss, "get_num_gpus", lambda: 0)() <= 0:
        pytest.skip("faiss sees no GPU: pip install faiss-gpu (the project's [gpu] extra)")
    from index.factory import is_gpu, make_index, search, to_gpu

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cpu = make_index("Flat", 64)
    cpu.add(x)
    gpu = to_gpu(make_index("Flat", 64))
    gpu.add(x)
    assert is_gpu(gpu)
    D0, I0 = search(cpu, x[:100], 10)
    D1, I1 = search(gpu, x[:100], 10)
    assert (I0[:, 0] == np.arange(100)).all() and (I1[:, 0] == np.arange(100)).all()
    assert np.mean(I0 == I1) > 0.99
    np.testing.assert_allclose(D0, D1, atol=1e-4)


def test_weight_averaging_on_cuda():
    from rgcn.averaging import update_average

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).cuda()
    snaps, mean = [], None
    for n in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        snaps.append({k: p.detach().clone() for k, p in model.named_parameters()})
        mean = update_average(mean, model, n)
    for k in mean:
        assert mean[k].is_cuda
        torch.testing.assert_close(mean[k], torch.stack([s[k] for s in snaps]).mean(0))
