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
    return {"heads": list(_tagger.heads), "info": _tagger.info(), "pid": os.getpid(), "keeps_memory": _keeps_memory,
            "reads_photos": bool(_tagger.reads_photos)}


def _tag(posts: list, batch_size: int) -> list:
    try:
        return list(_tagger.tag_many(posts, batch_size=batch_size))
    except Exception as e:                           # noqa: BLE001 - its class may not unpickle in the parent
        raise _plain(e) from None


def _serve(conn, load_args: dict, threads: int | None, imports: list[str]) -> None:
    """The child's life: load the runs, then answer ``(name, args)`` calls until told to stop
    or until the parent's end of the pipe closes."""
    _load(load_args, threads, imports)
    calls = {"describe": _describe, "tag": _tag}
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        if name == "stop":
            return
        try:
            answer = (True, calls[name](*args))
        except Exception as e:                        # noqa: BLE001 - raised again in the parent (made plain)
            answer = (False, e)
        try:
            conn.send(answer)
        except (OSError, ValueError):                 # the parent is gone
            return
        except Exception as e:                        # noqa: BLE001 - an answer that does not pickle
            conn.send((False, _plain(e)))


class ModelProcess:
    """A tagger (``tag_many``, ``heads``, ``info()``) whose runs are loaded and tagged in a
    child process, one call at a time over a pipe.

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
        self._proc, self._conn = self._start()
        try:
            ok, about = self._ask("describe")
        except (EOFError, OSError):
            self.close()
            raise RuntimeError("the model's process could not start (see the lines above; a script that makes the "
                               "app must keep its top level under `if __name__ == \"__main__\":`, since the process "
                               "starts by importing it)") from None
        if not ok:
            self.close()
            raise about
        self.heads, self._info = about["heads"], about["info"]
        self.keeps_freed_memory, self.reads_photos = about["keeps_memory"], about["reads_photos"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _start(self):
        ctx = multiprocessing.get_context("spawn")
        conn, child_end = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child_end, self.load_args, self.threads, plugin_modules()),
                           name="rgcn-model", daemon=True)
        proc.start()
        child_end.close()
        return proc, conn

    def _ask(self, name: str, *args):
        with self._lock:
            self._conn.send((name, args))
            return self._conn.recv()

    def _call(self, name: str, *args):
        proc = self._proc
        try:
            ok, value = self._ask(name, *args)
        except (EOFError, OSError):
            with self._lock:
                if self._proc is proc:           # the first caller to see it starts the next child
                    self.restarts += 1
                    log.warning("the model's process stopped; starting another (restart %d)", self.restarts)
                    self._conn.close()
                    proc.join(timeout=5)
                    self._proc, self._conn = self._start()
            raise ModelProcessDied("the model's process stopped while tagging this post (out of memory, or a "
                                   "crash); a new one was started: send it again") from None
        if not ok:
            raise value
        return value

    def tag_many(self, posts, batch_size: int | None = None) -> list:
        """The results of ``posts`` (a list), in order, tagged in the child in batches of
        ``batch_size`` (default: the loaded tagger's)."""
        posts = list(posts)
        return self._call("tag", posts, int(batch_size or self.load_args.get("batch_size") or len(posts) or 1))

    def info(self) -> dict:
        return {**self._info, "model_process": {"pid": self.pid, "restarts": self.restarts,
                                                "keeps_freed_memory": self.keeps_freed_memory}}

    def close(self) -> None:
        """Stop the child (once the batch it is tagging is done)."""
        try:
            with self._lock:
                self._conn.send(("stop", ()))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()
