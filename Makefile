# Two commands on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-all bench-text clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,ocr]'
	touch $(STAMP)

DEMO  := data/demo
DEMO_INDEX := .cache/demo/index

# The main job: generate the demo (real photos from installed packages), index its images
# with the offline EfficientNet-Lite0, train the text-only and the R-GCN tagger, compare
# them (overall and on the entities only the photo decides), tag two new posts whose photos
# are not in the index, write a retrieval report.
demo: $(STAMP)
	test -f $(DEMO)/manifest.json || $(PY) -m data.demo generate --out $(DEMO) --quiet
	test -f $(DEMO_INDEX)/manifest.json || $(PY) -m index build --quiet --images $(DEMO)/images \
	    --data $(DEMO)/train.jsonl $(DEMO)/valid.jsonl $(DEMO)/test.jsonl --out $(DEMO_INDEX)
	$(PY) train.py --config configs/demo_text.yaml --no-progress
	$(PY) train.py --config configs/demo_rgcn.yaml --no-progress
	$(PY) -m rgcn compare runs/demo/demo_text runs/demo/demo_rgcn --gold $(DEMO)/test.jsonl \
	    --subset-field image_decided
	$(PY) -m data.demo new-posts --out runs/demo/new_posts
	$(PY) -m rgcn predict --run runs/demo/demo_rgcn --input runs/demo/new_posts/posts.jsonl \
	    --images runs/demo/new_posts/images --format jsonl
	$(PY) -m retrieval report --quiet --index $(DEMO_INDEX) --images $(DEMO)/images \
	    --data train=$(DEMO)/train.jsonl valid=$(DEMO)/valid.jsonl test=$(DEMO)/test.jsonl \
	    --cache .cache/demo/graphs --split test --sample 12 --out runs/demo/retrieval_report.html
	@echo "retrieval report: runs/demo/retrieval_report.html"

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache  # no upward import between data/ index/ retrieval/ rgcn/
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench-text: $(STAMP)
	$(PY) benchmarks/text_baseline.py --dataset twitter2015

clean:
	rm -rf runs .cache data/demo
