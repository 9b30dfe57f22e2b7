"""Where a trained ITA run's encoder looks from a ``visual_text`` post's name.

ITA types such a name only if the encoder finds the same word in the photo's text and reads
the word beside it there ("DR. MAROVAN"). For each ``visual_text`` test post of the demo,
the attention of the name's first sub-word (the one the tagger reads) is split, in each
layer (mean over heads), into: the name's copies in the visual context (``name_copy``), the
sign's other sub-words (``sign_other``: the cue, when the sign is read first), the rest of
the context (``context_rest``: tags, caption) and the post's own sub-words (``post``); the
rest goes to ``[CLS]`` and ``[SEP]``. Posts whose context holds no copy of the name are
skipped.

    python benchmarks/ita_attention.py --runs runs/demo/ita/seed13 runs/heads_ocr/ita/seed13

Writes ``benchmarks/results/ita_attention.json`` (``--output``) through ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import RESULTS, write_result  # noqa: E402

PARTS = ("name_copy", "sign_other", "context_rest", "post")


def positions(ids: list[int], query: int, sep_id: int, sign_pieces: int) -> dict[str, list[int]]:
    """The positions of each part of one window ``[CLS] post [SEP] context [SEP]``.

    ``query`` is the name's first sub-word; the context's first ``sign_pieces`` sub-words
    are the sign's (the OCR read first).

    >>> positions([101, 7, 8, 9, 102, 5, 8, 6, 11, 102], query=2, sep_id=102, sign_pieces=3)
    {'name_copy': [6], 'sign_other': [5, 7], 'context_rest': [8], 'post': [1, 2, 3]}
    """
    sep = ids.index(sep_id)
    context = list(range(sep + 1, len(ids) - 1))
    copies = [j for j in context if ids[j] == ids[query]]
    sign = context[:sign_pieces]
    return {"name_copy": copies, "sign_other": [j for j in sign if j not in copies],
            "context_rest": [j for j in context[sign_pieces:] if j not in copies], "post": list(range(1, sep))}


def shares(rows, parts: dict[str, list[int]]) -> dict[str, list[float]]:
    """Per layer, the attention mass of one query on each part. ``rows``: one ``(T,)``
    tensor per layer (the query's attention, mean over heads)."""
    return {k: [float(r[idx].sum()) if idx else 0.0 for r in rows] for k, idx in parts.items()}


def run_attention(run: Path, test: str, images: str, limit: int) -> dict:
    import torch

    from data.corpus import read_corpus
    from rgcn.batching import TaggingDataset
    from rgcn.checkpoint import load_checkpoint, read_meta
    from rgcn.config import config_from_dict
    from rgcn.heads import head_class

    ckpt = run / "best"
    cfg = config_from_dict(read_meta(ckpt)["config"])
    if cfg.head.name != "ita":
        raise UserError(f"--runs {run}", f"is a {cfg.head.name!r} run", "give runs of the ita head")
    samples = [s for s in read_corpus(test, images).samples if s.meta.get("kind") == "visual_text"][:limit]
    if not samples:
        raise UserError(f"--test {test}", "holds no visual_text post", "give the demo's test split")
    ctx = head_class("ita").setup(dict(cfg.head.options), {"test": samples}, None, progress=False)
    model, _, _ = load_checkpoint(ckpt, "cpu", ctx)
    model.eval()
    backbone, tok = model.encoder.backbone, model.tokenizer
    backbone.config._attn_implementation = "eager"          # attention weights are returned by the eager path only
    ds = TaggingDataset(samples, tok)
    total = {k: [0.0] * backbone.config.num_hidden_layers for k in PARTS}
    n = 0
    for i, s in enumerate(samples):
        batch = model.make_batch(ds, [i], training=False)
        if batch.input_ids.shape[0] != 1:
            continue                                          # a post read in several windows
        with torch.no_grad():
            out = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_attentions=True)
        ids = batch.input_ids[0].tolist()
        query = int(batch.word_pos[0, s.meta["target"][0][0]])
        sign_first = list(cfg.head.options.get("order", ["tags"]))[:1] == ["ocr"]
        pieces = sum(len(p) for p in tok.encode((s.meta.get("sign") or "").split()).word_pieces) if sign_first else 0
        parts = positions(ids, query, tok.sep_id, pieces)
        if not parts["name_copy"]:
            continue
        n += 1
        for k, v in shares([a[0, :, query, :].mean(0) for a in out.attentions], parts).items():
            total[k] = [t + x for t, x in zip(total[k], v)]
    return {"run": str(run), "lr": cfg.train.lr, "order": list(cfg.head.options.get("order", [])), "posts": n,
            "per_layer": {k: [round(t / max(n, 1), 4) for t in v] for k, v in total.items()}}


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/ita_attention.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="ita run folders (each with best/)")
    p.add_argument("--test", default="data/demo/test.jsonl")
    p.add_argument("--images", default="data/demo/images")
    p.add_argument("--limit", type=int, default=40, help="visual_text posts read (the first ones)")
    p.add_argument("--output", default=str(RESULTS / "ita_attention.json"))
    a = p.parse_args(argv)
    for r in a.runs:
        if not (Path(r) / "best" / "checkpoint.json").is_file():
            raise UserError(f"--runs {r}", "holds no best/checkpoint.json", "give a finished ita run folder")
    out = {"test": a.test, "limit": a.limit, "parts": list(PARTS),
           "runs": [run_attention(Path(r), a.test, a.images, a.limit) for r in a.runs]}
    write_result(a.output, out, __file__, argv)
    for r in out["runs"]:
        print(f"{r['run']} (encoder lr {r['lr']}, {r['posts']} posts): attention of the name, per layer")
        for k, v in r["per_layer"].items():
            print(f"  {k:13s} " + " ".join(f"{x:.3f}" for x in v))
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
