import sys

import pytest

from rgcn import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_takes_both_settings(monkeypatch):
    calls = []
    real = memory.ctypes.CDLL

    class Spy:
        def __init__(self, lib):
            self.lib = lib

        @property
        def mallopt(self):
            fn = self.lib.mallopt

            def call(param, value):
                calls.append((param, value))
                return fn(param, value)
            call.argtypes = call.restype = None
            return call

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Spy(real(name)))
    assert memory.keep_freed_memory() is True
    assert calls == [(memory.M_MMAP_THRESHOLD, 32 << 20), (memory.M_TRIM_THRESHOLD, 1 << 30)]


def test_elsewhere_nothing_changes(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.keep_freed_memory() is False
