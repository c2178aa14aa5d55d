# One-command set-up on a fresh machine: `make demo` and `make test` create .venv as needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output
REAL_DATA ?= ../shared/data/real

.PHONY: setup demo test lint bench clean browser weights localiser-weights

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; install Python 3.11 or run 'make PY=python3 ...'"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# CPU torch first, so nothing below pulls the CUDA build
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spinefx demo --out $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q --timeout=900

# Rebuild the shipped default weights from seeds (default-cpu recipe; ~30 min on 2 cores)
weights: $(STAMP)
	$(BIN)/spinefx weights build --data $(REAL_DATA) --work build/default-weights
	$(BIN)/spinefx weights verify

# Rebuild the shipped body-centre heatmap weights (--localiser heatmap) from seeds: the VerSe
# mask without CT (CC BY-SA) rendered 12 times + 24 procedural scans; ~10 min on 2 cores. No
# real CT is trained on, so bench_localisation scores these weights on every real CT. (Adding
# the five shippable real CTs with --ct-subject scored the same on real CT in a two-fold
# cross-validation and worse on synthetic: benchmarks/results/localisation_heatmap_realct_cv.json)
localiser-weights: $(STAMP)
	$(BIN)/spinefx train-localiser --out build/localiser --real-data $(REAL_DATA) \
		--shippable-only --draws-per-mask 12 --procedural 24 --steps 600 --focal-steps 300 \
		--seed 0 --install
	$(BIN)/spinefx weights verify

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

browser:
	# Debian's chromium for the app's end-to-end test (Playwright drives it via executable_path)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
