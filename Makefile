# Two entry points (see README): `make demo` and `make test`.
# Both create .venv and install hand25d into it on first use: the train and
# test extras (everything), at the exact versions of constraints.txt
# (pyproject.toml has ranges; docs/development.md, "Dependencies"). While
# developing, `make test-fast` runs the tests not marked slow.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
# Size of the demo: about 15 minutes on 2 cores. Rerunning resumes (data shards
# and training checkpoints are reused).
DEMO_FRAMES ?= 4000
DEMO_EPOCHS ?= 10
DEMO_SEED ?= 0

.PHONY: demo test test-fast bazel-test clean

# After installing, build_main compiles the SHAVE C kernel and its TensorFlow
# op with the machine's gcc (pip's isolated build has no TensorFlow to build
# the op against) into a cache keyed by sources, flags and TensorFlow version
# (export/shave/cbuild.py); a missing compiler fails here.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,test]'
	$(PY) -m export.shave.build_main
	touch $(STAMP)

# pytest-xdist runs the tests on every core (-n auto).
test: $(STAMP)
	$(PY) -m pytest -n auto

test-fast: $(STAMP)
	$(PY) -m pytest -n auto -m "not slow"

bazel-test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bazel test //...

demo: $(STAMP)
	@echo "== hand25d demo: outputs in $(DEMO)/"
	@echo "== 1/6 generate $(DEMO_FRAMES) synthetic TOF frames (train/val/test by user)"
	$(PY) -m hand25d.data.generate_main --out=$(DEMO)/data --num_frames=$(DEMO_FRAMES) \
	  --seed=$(DEMO_SEED) --workers=2
	$(PY) -m hand25d.data.preview_main --data=$(DEMO)/data --out=$(DEMO)/data_preview.png
	@echo "== 2/6 train the multi-task network: the quick recipe, shortened to $(DEMO_EPOCHS) epochs"
	$(PY) -m hand25d.train_main --data=$(DEMO)/data --workdir=$(DEMO)/train --recipe=quick \
	  --epochs=$(DEMO_EPOCHS) --seed=$(DEMO_SEED) \
	  --log_every=50 --eval_every=300
	@echo "== 3/6 evaluate the best checkpoint on the test users"
	$(PY) -m hand25d.eval_main --data=$(DEMO)/data --checkpoint=$(DEMO)/train \
	  --out=$(DEMO)/eval
	@echo "== 4/6 export: TFLite float32, int8 PTQ and QAT, TFLite Micro, C arrays"
	$(PY) -m export.tflite_main --checkpoint=$(DEMO)/train --out=$(DEMO)/export \
	  --quant=float32,int8_ptq,int8_qat
	@echo "== 5/6 SHAVE: the exported fp16 blob run by the C kernel in a 128 KB slice, against float32 TFLite"
	$(PY) -m export.shave.shave_main --blob=$(DEMO)/export/shave_fp16.blob \
	  --tflite=$(DEMO)/export/hand25d_float32.tflite --data=$(DEMO)/data --runner=c
	@echo "== 6/6 2.5D runtime on a synthetic sequence, with the trained model shipped in hand25d/pretrained"
	$(PY) -m hand25d.runtime.demo.run_main --input=synthetic --out=$(DEMO)
	@echo "== done: $(DEMO)/report.md"

clean:
	rm -rf $(DEMO) .bazel
