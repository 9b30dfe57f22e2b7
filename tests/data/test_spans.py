from data.spans import get_spans


def test_spans_by_hand():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-MISC"]
    assert get_spans(tags) == [("PER", 0, 2), ("LOC", 3, 5), ("LOC", 5, 6), ("ORG", 6, 7), ("MISC", 7, 8)]
    assert get_spans(["O", "O"]) == []
    assert get_spans(["I-PER"]) == [("PER", 0, 1)]
