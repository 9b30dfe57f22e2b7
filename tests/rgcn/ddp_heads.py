"""Started by ``test_ddp.py`` under torchrun (2 processes, gloo): every head trains two steps
through :func:`rgcn.distributed.loss_function` on 4 posts, the first process's slice being
the 2 posts with an image and the other's the 2 without, so the image-side layers of maf
and bga (and their auxiliary losses) run on one process only. Writes ``OUT/rank-R.json``:
per head, the steps' losses and a checksum of the weights after them.

    torchrun --nproc_per_node 2 --standalone tests/rgcn/ddp_heads.py ENCODER_DIR OUT
"""
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from data.corpus import Sample  # noqa: E402
from rgcn import distributed  # noqa: E402
from rgcn.batching import TaggingDataset  # noqa: E402
from rgcn.encoder import WordEncoder, WordTokenizer, load_backbone  # noqa: E402
from rgcn.heads import build_head  # noqa: E402
from rgcn.heads.rgcn import NoImageGraphs  # noqa: E402
from rgcn.tagger import Tagger  # noqa: E402
from tests.rgcn.test_maf_head import hand_regions  # noqa: E402

HEADS = {
    "maf": ({"heads": 2, "dropout": 0.0, "swap_share": 1.0}, lambda: {"regions": hand_regions(without=("p2", "p3"))}),
    "bga": ({"heads": 2, "dropout": 0.0, "real_share": 0.5}, lambda: {"regions": hand_regions(without=("p2", "p3"))}),
    "ita": ({"cva": True}, lambda: {"visual_contexts": {}, "index_artifact": None}),
    "rgcn": ({"feature_dim": 3, "dropout": 0.0}, lambda: {"graphs": NoImageGraphs(3)}),
    "text": ({}, dict),
}


def main(encoder_dir: str, out: str) -> None:
    d, device = distributed.init(torch.device("cpu"))
    marker = Path(out) / "setup-done"
    with distributed.main_first(d):                  # the others run the block once the first is done
        if d.is_main:
            time.sleep(0.5)
            marker.write_text("done")
        seen_setup = marker.exists()
    samples = [Sample(f"p{i}", ["George", "in", "Florida"][: i % 3 + 1], ["B-PER", "O", "B-LOC"][: i % 3 + 1])
               for i in range(4)]
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    report = {"rank": d.rank, "seen_setup": seen_setup, "heads": {}}
    for name, (options, context) in HEADS.items():
        torch.manual_seed(0)
        backbone, tok = load_backbone(encoder_dir)
        encoder = WordEncoder(backbone, 4, 0.0, "first", 1)
        model = Tagger(encoder, WordTokenizer(tok, 32), build_head(name, encoder.out_dim, options, context()), labels)
        data = TaggingDataset(samples, model.tokenizer, labels)
        loss_fn = distributed.loss_function(model, d)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for _ in range(2):
            idx, share = distributed.shard([0, 1, 2, 3], d.rank, d.world)   # rank 0: p0, p1 (with an image)
            loss = loss_fn(model.make_batch(data, idx, training=True))
            opt.zero_grad()
            (loss * distributed.backward_weight(share, d)).backward()
            opt.step()
            losses.append(loss.item())
        checksum = sum(p.double().sum().item() for p in model.parameters())
        report["heads"][name] = {"losses": losses, "checksum": checksum}
    (Path(out) / f"rank-{d.rank}.json").write_text(json.dumps(report))
    distributed.shutdown(d)


if __name__ == "__main__":
    main(*sys.argv[1:])
