"""index/faiss_module.py: FAISS's CPU and GPU builds install one module; both installed is
refused with the fix, wherever the project first imports FAISS."""
import sys
from importlib import metadata

import pytest

from data.errors import UserError
from index.faiss_module import check_install, installed_distributions


def test_the_faiss_distributions_are_found_by_name():
    names = ["numpy", "faiss-cpu", "faiss_gpu_cu12", "Faiss-GPU", "faissx"]
    assert installed_distributions(names) == ["faiss-cpu", "faiss-gpu", "faiss-gpu-cu12"]
    assert "faiss-cpu" in installed_distributions()                  # what `make test` installs here


@pytest.mark.parametrize("installed", [["faiss-cpu"], ["faiss-gpu"], ["faiss-gpu-cu12"], []])
def test_one_build_is_fine(installed):
    check_install(installed)


def test_both_builds_are_refused_naming_them_and_the_fix():
    with pytest.raises(UserError) as e:
        check_install(["faiss-gpu-cu12", "faiss-cpu"])
    msg = str(e.value)
    assert "faiss-cpu" in msg and "faiss-gpu-cu12" in msg
    assert "pip uninstall -y faiss-cpu" in msg and "pip uninstall -y faiss-gpu-cu12" in msg


class _Dist:
    def __init__(self, name):
        self.metadata = {"Name": name}


def test_the_first_faiss_import_of_the_index_package_checks(monkeypatch):
    real = list(metadata.distributions())
    monkeypatch.setattr(metadata, "distributions", lambda: [*real, _Dist("faiss-gpu")])
    monkeypatch.delitem(sys.modules, "index.faiss_module")         # as in a fresh process
    from index.factory import make_index

    with pytest.raises(UserError, match=r"installed twice \(faiss-cpu, faiss-gpu\)"):
        make_index("Flat", 4)
