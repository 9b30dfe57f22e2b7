"""rgcn/tagger.py: BIO-constrained decoding and ensembles of taggers."""
import json
import shutil

import pytest
import torch

import train
from rgcn.batching import TaggingDataset
from data.corpus import read_corpus
from rgcn.__main__ import main as cli
from rgcn.checkpoint import build_tagger
from rgcn.config import load_config
from rgcn.tagger import FORBIDDEN, bio_allowed, check_ensemble, constrained_crf

from ..conftest import TINY_CONLL
from .test_training import _args

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def invalid_bio(path):
    """Positions of an I-X at the start, after O or after another type."""
    return [i for i, t in enumerate(path) if t.startswith("I-")
            and (i == 0 or path[i - 1] == "O" or path[i - 1][2:] != t[2:])]


def test_bio_allowed_by_hand():
    start, trans = bio_allowed(LABELS)
    assert start.tolist() == [True, True, False, True, False]
    assert trans[:, 2].tolist() == [False, True, True, False, False]     # I-LOC after B-LOC, I-LOC only
    assert trans[:, 4].tolist() == [False, False, False, True, True]
    assert trans[:, [0, 1, 3]].all()


def _tagger(tiny_encoder, seed, *overrides):
    torch.manual_seed(seed)
    cfg = load_config(None, ["data.train=a", "data.valid=b", f"encoder.name={tiny_encoder}", *overrides])
    return build_tagger(cfg, LABELS).eval()


def test_the_constrained_decoder_never_emits_an_invalid_i_tag(tiny_encoder):
    model = _tagger(tiny_encoder, 0, "crf.constrained=true")
    assert model.constrained
    g = torch.Generator().manual_seed(0)
    emissions = 3 * torch.randn(64, 12, len(LABELS), generator=g)
    mask = torch.ones(64, 12, dtype=torch.bool)
    mask[::2, 7:] = False
    before = model.crf.transitions.detach().clone()
    constrained = model.decode_emissions(emissions, mask)
    model.constrained = False
    free = model.decode_emissions(emissions, mask)
    assert sum(len(invalid_bio(p)) for p in free) > 10           # random scores break BIO often
    assert all(not invalid_bio(p) for p in constrained)
    assert torch.equal(model.crf.transitions, before)            # the learned CRF is untouched
    # where the free path is valid, the constrained decoder finds the same one
    assert all(c == f for c, f in zip(constrained, free) if not invalid_bio(f))
    crf = constrained_crf(model.crf, LABELS)
    assert crf.start_transitions[2].item() == FORBIDDEN and crf.transitions[0, 4].item() == FORBIDDEN


def test_an_ensemble_of_one_is_the_run_and_of_two_decodes_the_mean_emissions(tiny_encoder, tmp_path):
    a, b = _tagger(tiny_encoder, 0), _tagger(tiny_encoder, 1)
    with torch.no_grad():                          # transitions that matter, so a scaled sum would decode otherwise
        a.crf.transitions.copy_(0.5 * torch.randn(len(LABELS), len(LABELS), generator=torch.Generator().manual_seed(3)))
    (tmp_path / "x.txt").write_text(TINY_CONLL * 2)
    samples = read_corpus(tmp_path / "x.txt").samples
    alone = a.predict(samples).tags
    assert a.predict(samples, ensemble=[]).tags == alone
    assert a.predict(samples, ensemble=[a]).tags == alone                 # the mean of a run with itself
    both = a.predict(samples, batch_size=64, ensemble=[b]).tags
    data = TaggingDataset(samples, a.tokenizer)
    idx = list(range(len(samples)))
    with torch.no_grad():
        batch = a.make_batch(data, idx, training=False)
        mean = (a.emissions(batch)[0] + b.emissions(b.make_batch(data, idx, training=False))[0]) / 2
    assert both == a.decode_emissions(mean, batch.word_mask)
    b.labels = list(reversed(b.labels))
    with pytest.raises(ValueError, match="one label set"):
        check_ensemble([a, b], ["A", "B"])


def test_evaluate_and_predict_take_several_runs(tmp_path, tiny_encoder, capsys):
    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    run, data = tmp_path / "runs" / "r", str(tmp_path / "d.txt")
    capsys.readouterr()
    assert cli(["evaluate", "--run", str(run), "--split", data, "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert cli(["evaluate", "--run", str(run), str(run), "--split", data, "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == one and "ensemble of 2 runs" in out.err
    assert cli(["predict", "--run", str(run), str(run), "--input", data, "--output", str(tmp_path / "p.conll")]) == 0
    # a run with another label order cannot join
    other = tmp_path / "other"
    shutil.copytree(run, other)
    meta = json.loads((other / "best" / "checkpoint.json").read_text())
    meta["labels"] = [meta["labels"][0], *reversed(meta["labels"][1:])]
    (other / "best" / "checkpoint.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert cli(["evaluate", "--run", str(run), str(other), "--split", data]) == 2
    assert "one label set" in capsys.readouterr().err


def test_evaluate_switches_constrained_decoding_on_a_trained_run(tmp_path, tiny_encoder, capsys):
    from safetensors.torch import load_file, save_file

    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    run, data = tmp_path / "runs" / "r", str(tmp_path / "d.txt")
    weights = run / "best" / "model.safetensors"
    state = load_file(weights)
    labels = json.loads((run / "best" / "checkpoint.json").read_text())["labels"]
    inside = [i for i, t in enumerate(labels) if t.startswith("I-")]
    state["crf.start_transitions"][inside] = 50.0        # the free decoder now opens posts with I- tags
    save_file(state, weights)

    def tags(*flags):
        out = tmp_path / f"p{len(flags)}{flags[:1]}.conll"
        assert cli(["evaluate", "--run", str(run), "--split", data, "--output", str(out), *flags]) == 0
        blocks = out.read_text().strip().split("\n\n")
        return [[line.split("\t")[-1] for line in b.splitlines()] for b in blocks]

    free, constrained, default = tags("--no-constrained"), tags("--constrained"), tags()
    assert default == free                              # the run was trained with crf.constrained=false
    assert any(invalid_bio(p) for p in free)
    assert not any(invalid_bio(p) for p in constrained)
