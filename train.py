"""Train a tagger from one config file, with ``section.key=value`` overrides.

    python train.py --config configs/twitter2015_text.yaml train.epochs=3
    python train.py --config configs/twitter2015_text.yaml --resume   # continue the run

The run folder (``out_dir/name``) receives the resolved config, per-epoch metrics, a
training curve, checkpoints and the test predictions; see ``rgcn/training.py``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from data.corpus import CorpusError
from rgcn.config import ConfigError, load_config
from rgcn.training import Trainer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML or JSON run config")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=3 head.name=rgcn")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last/ checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_intermixed_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    try:
        results = Trainer(cfg, progress=not args.no_progress).fit(resume=args.resume)
    except CorpusError as e:
        sys.exit(f"data error: {e}")
    summary = {k: results[k] for k in ("best_epoch", "valid") if k in results}
    if "test" in results:
        print(results["test_table"])
        summary["test_micro"] = results["test"]["micro"]
    print(json.dumps(summary, indent=2))
    print(f"run folder: {cfg.run_dir}")
    return results


if __name__ == "__main__":
    main()
