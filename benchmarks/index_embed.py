"""Embedding throughput (images/s) through the real build path (DataLoader + encode).

EfficientNet-Lite0 with its offline ImageNet weights, and open_clip ViT-B-32 with random
weights (same cost as trained ones). Images are synthetic 500x375 JPEGs written to a
temporary folder, so decoding and resizing are included, as in a real build.

    .venv/bin/python benchmarks/index_embed.py --n 256 --workers 2
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import write_result  # noqa: E402


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/index_embed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/index_embed.json")
    args = p.parse_args(argv)
    import torch
    from PIL import Image

    from index.embedding import embed_collection
    from index.embedders import get_embedder

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as d:
        images = []
        for i in range(args.n):
            arr = (rng.random((375, 500, 3)) * 255).astype(np.uint8)
            path = Path(d) / f"{i}.jpg"
            Image.fromarray(arr).save(path, quality=85)
            images.append((str(i), str(path)))
        for name, kw in [("efficientnet_lite0", {}), ("clip", {"model": "ViT-B-32"})]:
            emb = get_embedder(name, device="cpu", **kw)
            embed_collection(images[: args.batch_size], emb, args.batch_size, 0, progress=False)  # warm-up
            t = time.perf_counter()
            res = embed_collection(images, emb, args.batch_size, args.workers, with_regions=False,
                                   tags_k=0, progress=True)
            sec = time.perf_counter() - t
            results.append({"embedder": name, "model": kw.get("model", name), "dim": emb.dim,
                            "weights": emb.tag or "random", "images": len(res.ids), "seconds": sec,
                            "images_per_second": len(res.ids) / sec, "batch_size": args.batch_size,
                            "workers": args.workers, "torch_threads": torch.get_num_threads()})
    meta = {"cpu_count": os.cpu_count(), "device": "cpu", "load_avg_end": os.getloadavg()}
    write_result(args.out, {"meta": meta, "results": results}, __file__, argv)
    print(f"{'embedder':<20} {'model':<20} {'dim':>5} {'images':>7} {'seconds':>8} {'img/s':>7}")
    for r in results:
        print(f"{r['embedder']:<20} {r['model']:<20} {r['dim']:>5} {r['images']:>7} {r['seconds']:>8.1f} "
              f"{r['images_per_second']:>7.1f}")
    print(f"written {args.out}; load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
