"""The model in a process of its own: the service's event loop and the model never wait on
each other's Python.

In one process, the model's thread and the thread that parses requests and writes answers
share one interpreter lock, so every request handled while a batch runs holds the model up
between two of its operations. :class:`ModelProcess` loads the runs with
:func:`rgcn.load_tagger` in a child process and answers :meth:`ModelProcess.tag_many` from
it: posts go there, results come back, each batch once. The service's micro-batcher calls it
from its worker thread, which only waits.

The child starts with the ``spawn`` method (safe with CUDA and with the parent's threads),
ignores Ctrl-C (the parent stops it), and on Linux is sent SIGTERM when the parent dies, so
it never outlives the service; its allocator keeps the memory a batch frees for the next
(:func:`rgcn.memory.keep_freed_memory`). If it dies (out of memory, a crash in native code), the
batch's posts get an error, a new child loads the runs, and the next batch is served.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from data.errors import UserError

from ..memory import keep_freed_memory

log = logging.getLogger(__name__)

_tagger = None                    # the child's tagger (set by _load)
_failed: BaseException | None = None   # why _load could not load it (raised by _describe)
_keeps_memory = False                  # rgcn.memory.keep_freed_memory took effect in the child


class ModelProcessDied(RuntimeError):
    """The model's process stopped while it tagged a batch (a new one was started)."""


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (elsewhere: nothing)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def plugin_modules() -> list[str]:
    """The modules that registered this process's embedders and fusion heads: the child
    imports them too, so one registered at run time (a plugin, a test's) is known there."""
    from index.embedders import EMBEDDERS
    from rgcn.heads.base import _REGISTRY

    return sorted({getattr(make, "__module__", None) for make in [*EMBEDDERS.values(), *_REGISTRY.values()]}
                  - {None, "__main__"})


def _load(load_args: dict, threads: int | None, imports: list[str]) -> None:
    global _tagger, _failed, _keeps_memory
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _keeps_memory = keep_freed_memory()           # each batch reuses the last one's blocks
    try:
        for module in imports:
            importlib.import_module(module)
        if threads:
            import torch

            torch.set_num_threads(threads)
        from rgcn import load_tagger

        _tagger = load_tagger(**load_args)
    except Exception as e:                            # noqa: BLE001 - told to the parent by _describe
        _failed = _plain(e)


def _plain(e: Exception) -> Exception:
    """``e`` as an exception the parent can unpickle: a :class:`UserError` keeps its message,
    any other becomes a RuntimeError naming its class."""
    if isinstance(e, UserError):
        return UserError(e.message)
    return RuntimeError(f"{type(e).__name__}: {e}")


def _describe() -> dict:
    if _failed is not None:
        raise _failed
    return {"heads": list(_tagger.heads), "info": _tagger.info(), "pid": os.getpid(), "keeps_memory": _keeps_memory}


def _tag(posts: list, batch_size: int) -> list:
    try:
        return list(_tagger.tag_many(posts, batch_size=batch_size))
    except Exception as e:                           # noqa: BLE001 - its class may not unpickle in the parent
        raise _plain(e) from None


class ModelProcess:
    """A tagger (``tag_many``, ``heads``, ``info()``) whose runs are loaded and tagged in a
    child process.

    Args:
        load_args: keyword arguments of :func:`rgcn.load_tagger` (``runs``, ``device``,
            ``images``, ``view``, ``head_options``, ``constrained``, ``batch_size``).
        threads: CPU threads of the model in the child (``None``: torch's default).

    Raises:
        data.errors.UserError: the runs cannot be loaded (as :func:`rgcn.load_tagger` says).
    """

    def __init__(self, load_args: dict, threads: int | None = None):
        self.load_args, self.threads = dict(load_args), threads
        self.restarts = 0
        self._lock = threading.Lock()
        self._pool = self._start()
        try:
            about = self._pool.submit(_describe).result()
        except BrokenProcessPool:
            self.close()
            raise RuntimeError("the model's process could not start (see the lines above; a script that makes the "
                               "app must keep its top level under `if __name__ == \"__main__\":`, since the process "
                               "starts by importing it)") from None
        except BaseException:
            self.close()
            raise
        self.heads, self._info, self.pid = about["heads"], about["info"], about["pid"]
        self.keeps_freed_memory = about["keeps_memory"]

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_load,
                                   initargs=(self.load_args, self.threads, plugin_modules()))

    def _call(self, fn, *args):
        pool = self._pool
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:           # the first caller to see it starts the next child
                    self.restarts += 1
                    log.warning("the model's process stopped; starting another (restart %d)", self.restarts)
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
                    self._pool.submit(_describe).add_done_callback(self._started)
            raise ModelProcessDied("the model's process stopped while tagging this post (out of memory, or a "
                                   "crash); a new one was started: send it again") from None

    def _started(self, future) -> None:
        if future.exception() is None:
            self.pid = future.result()["pid"]

    def tag_many(self, posts, batch_size: int | None = None) -> list:
        """The results of ``posts`` (a list), in order, tagged in the child in batches of
        ``batch_size`` (default: the loaded tagger's)."""
        posts = list(posts)
        return self._call(_tag, posts, int(batch_size or self.load_args.get("batch_size") or len(posts) or 1))

    def info(self) -> dict:
        return {**self._info, "model_process": {"pid": self.pid, "restarts": self.restarts,
                                                "keeps_freed_memory": self.keeps_freed_memory}}

    def close(self) -> None:
        """Stop the child (waiting for the batch it is tagging)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
