from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from rgcn.metrics import score


def test_score_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    s = score(gold, pred)
    # gold spans: PER(0,2) LOC(3,4) ORG(0,1); pred: PER(0,1) LOC(3,4) ORG(0,1)
    assert (s.total.tp, s.total.n_pred, s.total.n_gold) == (2, 3, 3)
    assert abs(s.f1 - 2 / 3) < 1e-12
    assert s.by_type["PER"].tp == 0 and s.by_type["ORG"].tp == 1
    assert "micro" in s.table()


def test_filter_counts_only_selected_spans():
    gold = [["B-PER", "O", "B-LOC"]]
    pred = [["B-ORG", "O", "B-LOC"]]
    s = score(gold, pred, spans_filter=lambda i, span: span[1] == 0)
    assert (s.total.tp, s.total.n_pred, s.total.n_gold) == (0, 1, 1)


TAGS = st.sampled_from(["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-MISC"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=6).flatmap(
    lambda lens: st.tuples(st.just(lens), st.lists(st.lists(TAGS, min_size=2 * sum(lens), max_size=2 * sum(lens)),
                                                   min_size=1, max_size=1))))
def test_matches_seqeval(data):
    lens, (flat,) = data
    half = len(flat) // 2
    gold, pred, i = [], [], 0
    for n in lens:
        gold.append(flat[i:i + n])
        pred.append(flat[half + i: half + i + n])
        i += n
    s = score(gold, pred)
    if s.total.n_gold and s.total.n_pred:
        assert abs(s.total.precision - precision_score(gold, pred)) < 1e-9
        assert abs(s.total.recall - recall_score(gold, pred)) < 1e-9
        assert abs(s.f1 - f1_score(gold, pred)) < 1e-9
        rep = classification_report(gold, pred, output_dict=True, zero_division=0)
        for t, ts in s.by_type.items():
            if ts.n_gold:
                assert abs(ts.f1 - rep[t]["f1-score"]) < 1e-9
