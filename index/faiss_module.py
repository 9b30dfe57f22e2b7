"""The one place the project imports FAISS, after checking which build is installed.

FAISS comes as two distributions that install the same ``faiss`` module: ``faiss-cpu``
(the ``cpu`` extra, ``pip install -e '.[cpu]'``) and ``faiss-gpu`` (the ``gpu`` extra, or a
``faiss-gpu-cu12``-style name). With both installed, which one ``import faiss`` finds
depends on the order they were installed in, so a GPU machine can silently search on the
CPU (or the other way round). Importing this module refuses that with a
:class:`FaissInstallError` naming both and the command that removes one; the modules of
``index/`` and ``retrieval/`` import FAISS as ``from index.faiss_module import faiss``,
inside the functions that use it.
"""
from __future__ import annotations

from importlib import metadata
from typing import Iterable

from data.errors import UserError

CPU, GPU = "faiss-cpu", "faiss-gpu"
"""The distributions of the ``cpu`` and ``gpu`` extras; any ``faiss-gpu-*`` name counts as GPU."""


class FaissInstallError(UserError, ImportError):
    """No FAISS, or both the CPU and the GPU build of it, installed."""


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions(names: Iterable[str] | None = None) -> list[str]:
    """The FAISS distributions among ``names`` (default: every installed distribution's name),
    sorted: ``faiss-cpu``, ``faiss-gpu`` or ``faiss-gpu-<suffix>``."""
    if names is None:
        names = (d.metadata["Name"] or "" for d in metadata.distributions())
    found = {_canonical(n) for n in names}
    return sorted(n for n in found if n == CPU or n == GPU or n.startswith(GPU + "-"))


def check_install(installed: Iterable[str]) -> None:
    """Refuse the CPU and the GPU build installed together (:data:`CPU`, :data:`GPU`)."""
    installed = sorted(installed)
    cpu = [n for n in installed if n == CPU]
    gpu = [n for n in installed if n != CPU]
    if cpu and gpu:
        raise FaissInstallError(
            f"FAISS is installed twice ({', '.join(installed)})",
            "both install the one `faiss` module, so which one is imported depends on the order they were "
            "installed in",
            f"keep one: on a GPU machine `pip uninstall -y {CPU}` and reinstall the GPU build "
            f"(`pip install --force-reinstall {gpu[0]}`, the project's `gpu` extra), elsewhere "
            f"`pip uninstall -y {' '.join(gpu)}` and reinstall `{CPU}` (the `cpu` extra, what `make test` installs)")


check_install(installed_distributions())
try:
    import faiss  # noqa: E402  (the check above comes first on purpose)
except ImportError as e:
    raise FaissInstallError("FAISS cannot be imported", str(e),
                            "install one build: `pip install -e '.[cpu]'` (faiss-cpu), or `.[gpu]` on a machine "
                            "with an NVIDIA GPU (faiss-gpu)") from None

__all__ = ["faiss", "check_install", "installed_distributions", "FaissInstallError", "CPU", "GPU"]
