"""The paper recipes (configs/paper/): each loads, validates and builds its head; a hub name
that cannot be had offline fails at once, naming the local-path form."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.errors import UserError
from rgcn.config import load_config
from rgcn.heads import head_class

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper"
HEADS = ("text", "rgcn", "maf", "ita", "bga")
DATASETS = ("twitter2015", "twitter2017")
BERT_BASE_WIDTH = 768


def test_one_config_per_head_and_dataset():
    assert sorted(p.name for p in PAPER.glob("*.yaml")) == sorted(f"{d}_{h}.yaml" for d in DATASETS for h in HEADS)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("head", HEADS)
def test_paper_config_loads_validates_and_builds_its_head(head, dataset):
    cfg = load_config(PAPER / f"{dataset}_{head}.yaml")
    assert cfg.head.name == head
    assert cfg.encoder.name == "bert-base-cased" and cfg.train.device == "cuda"
    assert cfg.data.train == f"prepared/{dataset}/train.jsonl" and cfg.data.test == f"prepared/{dataset}/test.jsonl"
    text = (PAPER / f"{dataset}_{head}.yaml").read_text()
    assert "confirmed" in text.lower()           # each recipe says what the paper states and what was chosen
    if head != "text":
        assert cfg.head.options["index"] == f".cache/paper/{dataset}/index_clip"
    # the head's options are valid: build it as training would, without the index's files
    options = {**cfg.head.options, "index": None} if head != "text" else dict(cfg.head.options)
    cls = head_class(head)
    context = cls.setup(options, splits={}, run_dir=None, progress=False)
    cls(BERT_BASE_WIDTH + cfg.encoder.casing_dim, options, context)


def test_a_wrong_option_in_a_paper_config_would_be_caught(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((PAPER / "twitter2015_maf.yaml").read_text().replace("alpha: 0.19", "alpha: 0.9"))
    options = {**load_config(bad).head.options, "index": None}
    with pytest.raises(ValueError, match="alpha"):
        head_class("maf")(BERT_BASE_WIDTH, options, head_class("maf").setup(options, {}, None, progress=False))


OFFLINE_PROBE = """
import sys, time
{imports}
t = time.time()
try:
    {call}
except Exception as e:
    print(type(e).__name__, isinstance(e, __import__('data.errors', fromlist=['UserError']).UserError))
    print(str(e))
print('seconds', time.time() - t)
"""


@pytest.mark.parametrize("env_offline", [True, False], ids=["HF_HUB_OFFLINE", "no-network"])
def test_bert_hub_name_offline_fails_fast_naming_the_local_path_form(env_offline):
    """Checked in a fresh process: with HF_HUB_OFFLINE, and with it unset where the hub cannot be
    reached (this machine has no route to it), the loader refuses within seconds."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if env_offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        from data.pretrained import hub_reachable

        if hub_reachable(timeout=2.0):
            pytest.skip("the hub is reachable from this machine: nothing offline to check")
    probe = OFFLINE_PROBE.format(imports="from rgcn.encoder import load_backbone", call="load_backbone('bert-base-cased')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120).stdout
    assert float(out.splitlines()[-1].split()[1]) < 10, out     # the refusal itself, imports apart
    assert out.splitlines()[0] == "UserError True", out
    assert "bert-base-cased" in out and "encoder.name=/path/to/folder" in out


def test_clip_tag_offline_fails_fast_naming_the_checkpoint_form():
    from index.embedders.clip import ClipEmbedder

    start = time.time()
    with pytest.raises(UserError, match="--pretrained /path/to/checkpoint.pt"):
        ClipEmbedder("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert time.time() - start < 10


def test_a_missing_local_encoder_folder_is_a_user_error(tmp_path):
    from data.pretrained import resolve_text_model

    with pytest.raises(UserError, match="no such folder"):
        resolve_text_model(str(tmp_path / "bert-base-cased"))
    with pytest.raises(UserError, match="no such folder"):
        resolve_text_model("./models/bert")
