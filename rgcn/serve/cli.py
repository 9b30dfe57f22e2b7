"""``python -m rgcn serve``: its arguments, and starting uvicorn on the app.

Importing this module is cheap (argparse only); :func:`serve` imports the app and the model.
"""
from __future__ import annotations

import sys

LOOPBACK = ("127.0.0.1", "::1", "localhost")


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


def settings_of(args, head_options: dict | None = None):
    from .app import Settings

    return Settings(runs=list(args.run), images=args.images, max_upload_mb=args.max_upload_mb,
                    max_chars=args.max_chars, max_batch=args.batch_size, batch_wait_ms=args.batch_wait_ms,
                    max_posts=args.max_posts, device=args.device, head_options=head_options or None,
                    constrained=getattr(args, "constrained", None))


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

    from .app import create_app

    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}:{args.port}, reachable from other machines; the service has "
              "no authentication: anyone who reaches this port can use it (bind 127.0.0.1 unless you mean it)",
              file=sys.stderr)
    set_threads(getattr(args, "threads", None))
    app = create_app(settings_of(args, head_options))
    heads = ", ".join(getattr(app.state.tagger, "heads", []))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {' '.join(map(str, args.run))} ({heads}) on http://{shown}:{args.port}/ "
          f"(API docs: /docs); Ctrl-C stops it", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
