"""The batched Viterbi decoder (rgcn/crf.py) against pytorch-crf's ``CRF.decode``.

Both decode the same random emissions and masks (posts of random lengths, one word at the
least) with the same CRF; the paths must be equal, and each decoder is timed over
``--repeats`` runs (median, after a warm-up). pytorch-crf walks back each post word by word
with ``.item()`` calls; ours walks the whole batch back with one ``torch.gather`` per word
position and brings the paths to the host once. Result: ``benchmarks/results/crf_decode.json``
(stamped by ``benchmarks/provenance.py``).

    python benchmarks/crf_decode.py                       # batch 64 x 40 words, 9 tags, CPU
    python benchmarks/crf_decode.py --device cuda --output /tmp/crf_decode_cuda.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.errors import ArgumentParser, command, exit_status  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/crf_decode.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="posts per batch (default 64)")
    p.add_argument("--words", type=int, default=40, help="the longest post's words (default 40)")
    p.add_argument("--tags", type=int, default=9, help="tags (default 9: O and B/I of four types)")
    p.add_argument("--repeats", type=int, default=30, help="timed decodes of each decoder (default 30)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=str(RESULTS / "crf_decode.json"))
    return p.parse_args(argv)


def timed(fn, repeats: int, sync) -> list[float]:
    fn()                                                    # warm-up
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


@command
def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from torchcrf import CRF

    from rgcn.crf import decode

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    crf = CRF(args.tags, batch_first=True).to(device)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 1.0)
    emissions = 3 * torch.randn(args.batch, args.words, args.tags, device=device)
    lengths = torch.randint(1, args.words + 1, (args.batch,))
    lengths[0] = args.words
    mask = (torch.arange(args.words).unsqueeze(0) < lengths.unsqueeze(1)).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        ours, theirs = decode(crf, emissions, mask), crf.decode(emissions, mask=mask)
        if ours != theirs:
            raise SystemExit("the batched decoder's paths differ from pytorch-crf's")
        t_ours = timed(lambda: decode(crf, emissions, mask), args.repeats, sync)
        t_theirs = timed(lambda: crf.decode(emissions, mask=mask), args.repeats, sync)
    ms = lambda xs: round(1000 * statistics.median(xs), 3)   # noqa: E731
    payload = {"batch": args.batch, "max_words": args.words, "tags": args.tags, "words": int(lengths.sum()),
               "device": str(device), "repeats": args.repeats, "paths_equal": True,
               "batched_viterbi_ms": ms(t_ours), "pytorch_crf_decode_ms": ms(t_theirs),
               "speedup": round(statistics.median(t_theirs) / statistics.median(t_ours), 2),
               "note": "median wall time of one decode of the batch; timed on a shared machine"}
    write_result(args.output, payload, __file__, argv)
    print(f"batch {args.batch} x {args.words} words, {args.tags} tags, {device}: batched Viterbi "
          f"{payload['batched_viterbi_ms']} ms, pytorch-crf decode {payload['pytorch_crf_decode_ms']} ms "
          f"(x{payload['speedup']}); paths equal -> {args.output}")
    return payload


if __name__ == "__main__":
    sys.exit(exit_status(main()))
