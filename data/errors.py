"""The one error contract of every command: a user's mistake is one line, never a traceback.

A mistake in an argument, a path, a config value or an input file is raised as a
:class:`UserError` (or an exception class that derives from it) and says three things:

    error: WHAT: WHY; FIX

The entry points hand their ``main`` to :func:`run_command`, which prints that line and exits
with status 2; ``-v``/``--verbose`` on the command line adds the traceback. Anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: ``what`` went wrong (the argument, key or path), ``why``,
    and the ``fix``. Subclasses that already build a whole message pass it as ``what``."""

    exit_status = 2

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
