"""The one error contract of every command: a user's mistake is one line, never a traceback.

A mistake in an argument, a path, a config value or an input file is raised as a
:class:`UserError` (or an exception class that derives from it) and says three things:

    error: WHAT: WHY; FIX

The entry points hand their ``main`` to :func:`run_command` (or wear the :func:`command`
decorator, which does the same), which prints that line and exits with status 2;
``-v``/``--verbose`` on the command line adds the traceback. Anything else is a bug and keeps
its traceback.

Arguments are checked while they are parsed: :class:`ArgumentParser` says an argparse error on
that one line too, and the ``type=`` helpers (:func:`existing_dir`, :func:`existing_file`,
:func:`output_dir`, :func:`positive_int`, ...) refuse a wrong path or number naming the
argument, before any work starts.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
from pathlib import Path
from typing import Callable

EXIT_STATUS = 2
"""The status of a command stopped by a user's mistake (argparse's own, for the same reason)."""


class UserError(Exception):
    """A mistake the user can fix: ``what`` went wrong (the argument, key or path), ``why``,
    and the ``fix``. Subclasses that already build a whole message pass it as ``what``."""

    exit_status = EXIT_STATUS

    def __init__(self, what: str, why: str | None = None, fix: str | None = None):
        self.what, self.why, self.fix = str(what), why, fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        msg = self.what
        if self.why:
            msg += f": {self.why}"
        if self.fix:
            msg += f"; {self.fix}"
        return msg

    def __str__(self) -> str:
        return self.message


def one_line(message: str) -> str:
    """``message`` on one line: its lines joined by a space, blank ones dropped."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def error_line(e: BaseException) -> str:
    """The line a command prints for the user's mistake ``e``: ``error: WHAT: WHY; FIX``."""
    return f"error: {one_line(str(e))}"


def wants_traceback(argv) -> bool:
    """Whether the command line asks for the traceback: ``-v`` / ``--verbose`` (or ``-vv``)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    for a in args:
        if a == "--":
            break
        if a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}):
            return True
    return False


def run_command(main: Callable, argv=None):
    """Run ``main(argv)`` under the contract. Returns what ``main`` returns; for a
    :class:`UserError` prints :func:`error_line` on stderr (after the traceback with
    ``-v``) and returns its exit status (2). Other exceptions, bugs, pass through."""
    try:
        return main(argv)
    except UserError as e:
        if wants_traceback(argv):
            traceback.print_exc()
        print(error_line(e), file=sys.stderr)
        return e.exit_status


def command(main: Callable) -> Callable:
    """Decorate an entry point's ``main(argv=None)`` so that every call runs under
    :func:`run_command`: ``python -m X`` and a test's ``main([...])`` alike return 2 with one
    line on stderr for a user's mistake. The undecorated function is ``main.__wrapped__``."""

    @functools.wraps(main)
    def wrapper(argv=None):
        return run_command(main, argv)

    return wrapper


def raising(main: Callable) -> Callable:
    """``main`` without :func:`command`'s catch, for a command that runs another one: the inner
    command's :class:`UserError` reaches the outer command (which says it once) instead of
    coming back as a status 2 the caller would take for a result."""
    return getattr(main, "__wrapped__", main)


def exit_status(result) -> int:
    """The process status for what a decorated ``main`` returned: an int as is (``None``: 0);
    anything else (a results dict) means success."""
    if result is None:
        return 0
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


# ---- the command line ------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors (a missing or unknown argument, a bad choice,
    a value its ``type=`` refused) are a :class:`UserError`: one line, status 2. Subparsers
    made by :meth:`add_subparsers` are of this class too."""

    def error(self, message):
        raise UserError(self.prog, message, f"see {self.prog} --help")


def _path_check(kind: str, must_exist: bool = True) -> Callable[[str], str]:
    def check(value: str) -> str:
        p = Path(value).expanduser()
        if must_exist and not p.exists():
            raise argparse.ArgumentTypeError(f"{value}: no such {'folder' if kind == 'dir' else 'file'}; "
                                             f"give an existing {'folder' if kind == 'dir' else 'file'}")
        if kind == "dir" and p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{value}: is a file, not a folder; give the folder")
        if kind == "file" and p.is_dir():
            raise argparse.ArgumentTypeError(f"{value}: is a folder, not a file; give a file")
        return value

    check.__name__ = f"existing_{kind}"
    return check


existing_dir = _path_check("dir")
"""``type=`` for a folder that must exist (a file there is refused too)."""

existing_file = _path_check("file")
"""``type=`` for a file that must exist (a folder there is refused too)."""


def existing_path(value: str) -> str:
    """``type=`` for a file or folder that must exist."""
    if not Path(value).expanduser().exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or folder; give an existing path")
    return value


def unwritable(path: str | os.PathLike) -> str | None:
    """Why the folder ``path`` cannot be made or written (a file in its place or above it, an
    ancestor that is not writable), or ``None`` when it can."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        return f"{p} is a file, not a folder"
    return _writable_ancestor(p)[1]


def _writable_ancestor(p: Path) -> tuple[Path, str | None]:
    """The nearest existing ancestor of ``p`` and why nothing can be written under it (or None)."""
    q = p
    while not q.exists():
        if q.parent == q:
            break
        q = q.parent
    if not q.is_dir():
        return q, f"{q} is a file, so nothing can be created under it"
    if not os.access(q, os.W_OK | os.X_OK):
        return q, f"{q} is not writable"
    return q, None


def output_dir(value: str) -> str:
    """``type=`` for a folder a command writes (it may not exist yet): refused when a file is
    in its place or nothing can be created where it would go."""
    p = Path(value).expanduser()
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: is a file, not a folder; give a folder to write")
    _, why = _writable_ancestor(p)
    if why:
        raise argparse.ArgumentTypeError(f"{value}: cannot be written ({why}); give a writable folder")
    return value


def output_file(value: str) -> str:
    """``type=`` for a file a command writes: refused when a folder is in its place or its
    folder cannot be created or written."""
    p = Path(value).expanduser()
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: is a folder, not a file; give a file name to write")
    _, why = _writable_ancestor(p.parent if str(p.parent) else Path("."))
    if why:
        raise argparse.ArgumentTypeError(f"{value}: cannot be written ({why}); give a writable path")
    return value


def _number(kind: type, low: float, strict: bool, what: str) -> Callable[[str], float]:
    def check(value: str):
        try:
            n = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {'an integer' if kind is int else 'a number'}; "
                                             f"give {what}") from None
        if n < low or (strict and n == low) or n != n:
            raise argparse.ArgumentTypeError(f"{value}: out of range; give {what}")
        return n

    check.__name__ = what.replace(" ", "_")
    return check


positive_int = _number(int, 1, False, "a positive integer (>= 1)")
"""``type=`` for an integer >= 1."""

nonnegative_int = _number(int, 0, False, "a non-negative integer (>= 0)")
"""``type=`` for an integer >= 0."""

positive_float = _number(float, 0, True, "a positive number (> 0)")
"""``type=`` for a number > 0."""

nonnegative_float = _number(float, 0, False, "a non-negative number (>= 0)")
"""``type=`` for a number >= 0."""
