"""Does MAF's matcher tell a post's own photo from another post's? p(match) on held-out pairs.

Loads a trained MAF run and, for every post of a labelled split that has an image, computes
p(match) twice: with its own image (a real pair) and with the image of another post of the
split drawn at random (a swapped pair, never the same image). Reports the AUC of real
against swapped pairs (the chance that a real pair scores above a swapped one), the same
per kind of post when the posts carry a ``kind``, the mean p(match) of real pairs per kind
(does the matcher flag the demo's ``conflicting_image`` and ``unrelated_image`` photos?),
and draws both histograms.

    python benchmarks/maf_matching.py --run runs/heads/maf/seed13     # the demo's test split

Writes ``benchmarks/results/maf_matching.json`` (``--output``) through
``benchmarks/provenance.py`` and the histogram beside it (same name, ``.png``).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.corpus import read_corpus  # noqa: E402
from rgcn.batching import BucketSampler, TaggingDataset  # noqa: E402
from rgcn.training import load_for_corpus  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/maf_matching.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/heads/maf/seed13", help="a MAF run folder (or its best/)")
    p.add_argument("--split", default="data/demo/test.jsonl", help="labelled posts held out from training")
    p.add_argument("--images", default="data/demo/images")
    p.add_argument("--seed", type=int, default=0, help="draws the swapped partners")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", default=str(RESULTS / "maf_matching.json"), help="result JSON (the PNG goes beside it)")
    return p.parse_args(argv)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann-Whitney U / n1 n2)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def partners(rows: list[int], rng: random.Random) -> list[int]:
    """For each position, another position whose image row differs (a random derangement,
    redrawn where two posts share an image)."""
    n = len(rows)
    order = list(range(n))
    rng.shuffle(order)
    out = [0] * n
    for i, j in zip(order, order[1:] + order[:1]):                # a cycle: nobody keeps its own
        out[i] = j
    for i in range(n):
        while rows[out[i]] == rows[i]:
            out[i] = rng.randrange(n)
    return out


@torch.inference_mode()
def match_probabilities(model, samples, shown_ids: list[str], batch_size: int) -> np.ndarray:
    """p(match) of each sample with the image of the post ``shown_ids[i]``."""
    head = model.head
    data = TaggingDataset(samples, model.tokenizer)
    out = np.zeros(len(samples))
    model.eval()
    for idx in BucketSampler(data.lengths(), batch_size, shuffle=False):
        batch = model.make_batch(data, idx, training=False).to(model.device)
        regions, present = head.regions.lookup([shown_ids[i] for i in idx])
        batch.extras.update(regions=regions.to(model.device), present=present.to(model.device))
        with torch.autocast(model.device.type, dtype=model.autocast_dtype or torch.float32,
                            enabled=model.autocast_dtype is not None):
            p = head.match_probability(model.encoder(batch), batch.word_mask, batch.extras)
        out[idx] = p.float().cpu().numpy()
    return out


def plot(real: np.ndarray, swapped: np.ndarray, by_kind: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.linspace(0, 1, 26)
    fig, axes = plt.subplots(1, 2 if by_kind else 1, figsize=(11 if by_kind else 6, 3.8), squeeze=False)
    ax = axes[0][0]
    ax.hist(real, bins, alpha=0.6, label=f"own image ({len(real)})", color="tab:green")
    ax.hist(swapped, bins, alpha=0.6, label=f"another post's image ({len(swapped)})", color="tab:red")
    ax.set_xlabel("p(match)")
    ax.set_ylabel("posts")
    ax.set_title(title)
    ax.legend()
    if by_kind:
        ax = axes[0][1]
        for kind, values in by_kind.items():
            ax.hist(values, bins, histtype="step", linewidth=1.5, label=f"{kind} ({len(values)})")
        ax.set_xlabel("p(match), own image")
        ax.set_title("real pairs by kind of post")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    output = Path(a.output).resolve()
    corpus = read_corpus(a.split, a.images, require_tags=True)
    model, cfg, _ = load_for_corpus(a.run, corpus)
    if cfg.head.name != "maf":
        raise UserError(f"{a.run} is a {cfg.head.name!r} run; this measures MAF's matcher")
    samples = corpus.samples
    _, present = model.head.regions.lookup([s.id for s in samples])
    with_image = [s for s, p in zip(samples, present.tolist()) if p]
    rows = model.head.regions.image_rows([s.id for s in with_image])
    other = partners(rows, random.Random(a.seed))
    real = match_probabilities(model, with_image, [s.id for s in with_image], a.batch_size)
    swapped = match_probabilities(model, with_image, [with_image[j].id for j in other], a.batch_size)
    kinds = sorted({s.meta.get("kind") for s in with_image if s.meta.get("kind")})
    per_kind = {}
    for kind in kinds:
        sel = np.asarray([s.meta.get("kind") == kind for s in with_image])
        per_kind[kind] = {"posts": int(sel.sum()), "mean_p_real": float(real[sel].mean()),
                          "mean_p_swapped": float(swapped[sel].mean()), "auc": auc(real[sel], swapped[sel]),
                          "auc_vs_all_swapped": auc(real[sel], swapped)}
    result = {"run": a.run, "split": a.split, "seed": a.seed, "posts_with_image": len(with_image),
              "auc": auc(real, swapped), "mean_p_real": float(real.mean()), "mean_p_swapped": float(swapped.mean()),
              "per_kind": per_kind, "png": output.with_suffix(".png").name,
              "p_real": [round(float(x), 4) for x in real], "p_swapped": [round(float(x), 4) for x in swapped]}
    plot(real, swapped, {k: real[[s.meta.get("kind") == k for s in with_image]] for k in kinds},
         output.with_suffix(".png"), f"MAF p(match), held-out pairs: AUC {result['auc']:.3f}")
    write_result(output, result, __file__, argv)
    print(f"{len(with_image)} posts with an image; AUC real vs swapped {result['auc']:.3f}; "
          f"mean p(match) real {result['mean_p_real']:.3f}, swapped {result['mean_p_swapped']:.3f}")
    for kind, k in per_kind.items():
        print(f"  {kind:<18} posts {k['posts']:>4}  p real {k['mean_p_real']:.3f}  p swapped {k['mean_p_swapped']:.3f}"
              f"  AUC {k['auc']:.3f}  AUC vs all swapped {k['auc_vs_all_swapped']:.3f}")
    print(f"written {output} and {output.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
