"""Train a tagger from one config file, with ``section.key=value`` overrides.

    python train.py --config configs/twitter2015_text.yaml train.epochs=3
    python train.py --config configs/twitter2015_text.yaml --resume   # continue the run
    torchrun --nproc_per_node 2 train.py --config configs/twitter2015_text.yaml   # 2 processes

The run folder (``out_dir/name``) receives the resolved config, per-epoch metrics, a
training curve, checkpoints and the test predictions; see ``rgcn/training.py``. Under
torchrun each process trains on its slice of every batch (``train.batch_size`` is the global
batch) and the first one writes the run folder; see ``rgcn/distributed.py``.
"""
from __future__ import annotations

import argparse
import logging
import sys

from data.errors import ArgumentParser, command, exit_status, existing_file
from data.logs import setup_logging


def parse_args(argv=None):
    p = ArgumentParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=existing_file, help="YAML or JSON run config")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.epochs=3 head.name=rgcn")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last/ checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="show the full log on the console too "
                   "(it always goes to RUN_DIR/train.log)")
    return p.parse_intermixed_args(argv)


@command
def main(argv=None) -> dict:
    """Train the run of ``--config``; returns its results. A wrong config value, path or data
    file is a :class:`data.errors.UserError` (one line, status 2: :func:`data.errors.command`)."""
    args = parse_args(argv)
    setup_logging(None, args.verbose)                 # before the heavy imports, so their warnings are caught
    from rgcn import distributed
    from rgcn.config import ConfigError, check_paths, load_config
    from rgcn.training import Trainer, resolve_device

    try:
        cfg = load_config(args.config, args.overrides)
        distributed.check_batch_size(cfg.train.batch_size, distributed.env_world())
        check_paths(cfg)                              # every path the config names, before any work
    except ConfigError:
        if not distributed.env_world().is_main:      # said once under torchrun, by the first process
            sys.exit(2)
        raise
    dist, device = distributed.init(resolve_device(cfg.train.device))   # one process without torchrun
    try:
        if not dist.is_main:                          # the first process alone logs and prints
            logging.disable(logging.INFO)
        log_file = setup_logging(cfg.run_dir / "train.log", args.verbose) if dist.is_main else None
        results = Trainer(cfg, progress=not args.no_progress, dist=dist, device=device).fit(resume=args.resume)
    finally:
        distributed.shutdown(dist)
    if not dist.is_main:
        return results
    best = results["best_epoch"]
    print(f"best dev F1 {results['valid']['micro']['f1']:.2f} (epoch {best})")
    if "test" in results:
        print(f"test, best dev epoch:\n{results['test_table']}")
    print(f"run folder: {cfg.run_dir}  (log: {log_file})")
    return results


if __name__ == "__main__":
    sys.exit(exit_status(main()))
