"""benchmarks/tokenizer_roundtrip.py: agreement and kinds of disagreement, written with provenance."""
import json

from benchmarks import tokenizer_roundtrip as tr

POSTS = [["RT", "@cnn", ":", "Obama", "'", "s", "visit"],           # agrees in twitter2015
         ["I", "don", "'", "t", "know"],                              # agrees
         ["https", ":", "//t", ".", "co/x1"]]                         # the corpus split a URL


def test_compare_counts_agreement_and_kinds():
    r = tr.compare(POSTS, tr.tokenizers(nltk=False)["twitter2015"], keeps_compounds=True)
    assert (r["posts"], r["agree"], r["agreement"]) == (3, 2, 0.6667)
    assert [(k["kind"], k["posts"]) for k in r["disagreements"]] == [("url", 1)]
    before = tr.compare(POSTS, tr.BEFORE_RE.findall)                  # keeps don't whole, @cnn too
    assert before["agree"] == 0
    assert {k["kind"] for k in before["disagreements"]} == {"contraction/apostrophe", "url"}


def test_main_writes_json_and_markdown(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("IMGID:1\nRT\tO\n@cnn\tO\n:\tO\nParis\tB-LOC\n\nIMGID:2\nI\tO\ndon\tO\n'\tO\nt\tO\n")
    out = tmp_path / "r.json"
    tr.main(["--corpus", "mini", str(corpus), "--no-nltk", "--output", str(out)])
    res = json.loads(out.read_text())
    assert res["provenance"]["command"].startswith("python benchmarks/tokenizer_roundtrip.py --corpus mini")
    assert res["corpora"]["mini"]["tokenizers"]["twitter2015"]["agreement"] == 1.0
    assert res["corpora"]["mini"]["tokenizers"]["regex (before)"]["agreement"] == 0.5
    md = out.with_suffix(".md").read_text()
    assert md.startswith("`python benchmarks/tokenizer_roundtrip.py") and "| mini | 2 |" in md
