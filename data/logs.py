"""Console and log file for every command: a quiet console, the full story in a file.

The console gets this project's INFO messages (what a person needs: progress, a short
summary, where results went) and everybody's errors; third-party chatter (FAISS's loader,
deprecation warnings of dependencies, weight-loading bars) is held back at its own logger
or source and goes to the log file only, as does every DEBUG detail (resolved configs,
timings). ``verbose`` (``-v``) lets all of it through to the console too.

    setup_logging(run_dir / "train.log", verbose=args.verbose)
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

PROJECT = ("data", "index", "retrieval", "rgcn", "train", "benchmarks", "__main__")
"""Loggers whose INFO messages reach the console."""

QUIET_THIRD_PARTY = {"faiss.loader": logging.WARNING, "faiss": logging.WARNING, "PIL": logging.WARNING,
                     "urllib3": logging.WARNING, "filelock": logging.WARNING, "httpx": logging.WARNING,
                     "huggingface_hub": logging.WARNING, "matplotlib": logging.WARNING}
"""Third-party loggers and the least level they may log at (FAISS logs every loader attempt at INFO)."""

_HANDLER_TAG = "_mner_handler"


class _ConsoleFilter(logging.Filter):
    """This project's INFO and up; other loggers' errors only (warnings too with ``verbose``)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        if record.name.split(".")[0] in PROJECT:
            return record.levelno >= logging.INFO
        return record.levelno >= logging.ERROR


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno == logging.INFO else f"{record.levelname.lower()}: {msg}"


def setup_logging(log_file: str | os.PathLike | None = None, verbose: bool = False) -> Path | None:
    """Console at the project's INFO (everything with ``verbose``), ``log_file`` (appended)
    with every DEBUG record and captured warning. Calling it again replaces the handlers it
    installed. Returns the log file's path."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG)
    console = _StderrHandler()
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.addFilter(_ConsoleFilter(verbose))
    console.setFormatter(_ConsoleFormatter())
    setattr(console, _HANDLER_TAG, True)
    root.addHandler(console)
    path = None
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, mode="a", encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        setattr(fh, _HANDLER_TAG, True)
        root.addHandler(fh)
    # dependencies' warnings become py.warnings records (released first: captureWarnings does
    # nothing when an earlier call captured and something restored warnings.showwarning since)
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    for name, level in QUIET_THIRD_PARTY.items():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else level)
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            pass
        else:
            hf_logging.disable_progress_bar()        # "Loading weights" bars
            hf_logging.set_verbosity_error()
    return path
