"""benchmarks/head_params.py: parameters counted by part from a checkpoint's tensor shapes."""
import json

import torch
from safetensors.torch import save_file

from benchmarks import head_params


def fake_run(folder, head, tensors):
    (folder / "best").mkdir(parents=True)
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(folder / "best" / "model.safetensors"))
    (folder / "best" / "checkpoint.json").write_text(json.dumps({"config": {"head": {"name": head}}}))
    return folder


def test_parts_totals_and_what_a_head_adds(tmp_path):
    text = fake_run(tmp_path / "text", "text", {"encoder.w": (10, 4), "emission.weight": (3, 4), "crf.t": (3, 3)})
    big = fake_run(tmp_path / "big", "maf", {"encoder.w": (10, 4), "head.a": (4, 4), "head.b": (4,),
                                             "emission.weight": (3, 8), "crf.t": (3, 3)})
    out = head_params.main([str(text), str(big), "--output", str(tmp_path / "p.json")])
    a, b = out["runs"]
    assert a["parts"] == {"encoder": 40, "head": 0, "emission": 12, "crf": 9} and a["total"] == 61 and a["added"] == 0
    assert b["parts"] == {"encoder": 40, "head": 20, "emission": 24, "crf": 9} and b["head_name"] == "maf"
    assert b["added"] == 32
    assert json.loads((tmp_path / "p.json").read_text())["provenance"]["command"].startswith(
        "python benchmarks/head_params.py")
