"""``python -m rgcn serve``: its arguments, and starting uvicorn on the app.

Given ``--index IDX --data SPLIT=FILE ...`` (and the graph options of ``python -m retrieval
explore``), the service also serves the retrieval explorer under ``/explore``, with the
(first) run as its re-tagger.

Importing this module is cheap (argparse only); :func:`serve` imports the app and the model.
"""
from __future__ import annotations

import sys

LOOPBACK = ("127.0.0.1", "::1", "localhost")
EXPLORER_PATH = "/explore"
"""Where the retrieval explorer is mounted, when the app has one."""


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, nargs="+", help="run folder (uses best/) or a checkpoint folder; "
                   "several: an ensemble")
    p.add_argument("--images", help="folder that JSON requests' image paths are read from (paths leaving it "
                   "are refused); uploads need none")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                   "the service has no authentication)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest uploaded photo in MB (default 20)")
    p.add_argument("--max-chars", type=int, default=2000, help="longest post in characters (default 2000)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="most posts the model tags at once when requests arrive together (default 32)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="longest a post waits for others to join its batch, in ms (default 5)")
    p.add_argument("--max-posts", type=int, default=256, help="most posts in one /tag/batch request (default 256)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads the model uses (default: torch's, one per core); on "
                   "cores shared with other work or with the HTTP side, fewer threads wait less on each other")
    p.add_argument("--model-in-process", action="store_true",
                   help="load and run the model in the service's own process, on a thread (default: a process of "
                        "its own, so answering requests and tagging never wait on each other's Python)")
    from retrieval.__main__ import add_ab_arguments, add_graph_arguments

    g = p.add_argument_group(f"retrieval explorer (served under {EXPLORER_PATH} when --index and --data are given; "
                             "--images is also its image folder; the first --run re-tags its posts)")
    add_graph_arguments(g, required=False, images=False, verbose=False)
    add_ab_arguments(g)


def explorer_of(args, head_options: dict | None = None):
    """The :class:`retrieval.explore.Explorer` that ``--index`` and ``--data`` name, with the
    first run as its re-tagger, loaded with the service's --device, head options and
    --constrained; ``None`` when neither is given."""
    index, data = getattr(args, "index", None), getattr(args, "data", None)
    if index is None and data is None:
        return None
    from data.errors import UserError

    if data is None:
        raise UserError("--data", f"--index {index} was given without --data, and the explorer needs both",
                        "add --data train=FILE valid=FILE test=FILE (the splits the index was built from), or "
                        "leave out --index")
    if index is None:
        raise UserError("--index", "--data was given without --index, and the explorer needs both",
                        "add --index DIR (python -m index build), or leave out --data")
    import argparse

    from retrieval.__main__ import graph_defaults
    from retrieval.explore import Explorer

    options = {"head_options": head_options or None, "constrained": getattr(args, "constrained", None)}
    explore = graph_defaults(argparse.Namespace(**{**vars(args), "run": str(list(args.run)[0]),
                                                   "retagger_options": options}))
    return Explorer.from_args(explore)


def build_app(args, head_options: dict | None = None):
    """The app ``python -m rgcn serve ARGS`` serves (the explorer mounted when asked for)."""
    from . import app

    return app.create_app(settings_of(args, head_options), explorer=explorer_of(args, head_options))


def settings_of(args, head_options: dict | None = None):
    from .app import Settings

    return Settings(runs=list(args.run), images=args.images, max_upload_mb=args.max_upload_mb,
                    max_chars=args.max_chars, max_batch=args.batch_size, batch_wait_ms=args.batch_wait_ms,
                    max_posts=args.max_posts, device=args.device, head_options=head_options or None,
                    constrained=getattr(args, "constrained", None),
                    model_process=not getattr(args, "model_in_process", False), threads=getattr(args, "threads", None))


def set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (``None``: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        from data.errors import UserError

        raise UserError("--threads", f"must be at least 1, got {threads}", "give e.g. 1, or leave it out")
    import torch

    torch.set_num_threads(threads)


def serve(args, head_options: dict | None = None) -> int:
    """Load the runs once, then serve until interrupted."""
    import uvicorn

    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}:{args.port}, reachable from other machines; the service has "
              "no authentication: anyone who reaches this port can use it (bind 127.0.0.1 unless you mean it)",
              file=sys.stderr)
    set_threads(getattr(args, "threads", None))
    app = build_app(args, head_options)
    heads = ", ".join(getattr(app.state.tagger, "heads", []))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    explorer = f", the retrieval explorer: {EXPLORER_PATH}/" if app.state.explorer is not None else ""
    print(f"serving {' '.join(map(str, args.run))} ({heads}) on http://{shown}:{args.port}/ "
          f"(API docs: /docs{explorer}); Ctrl-C stops it", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
