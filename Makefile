# Two entry points on a fresh machine: `make demo` and `make test`. Both build .venv from the lock first.
PYTHON ?= python3.11
VENV := .venv
LOCK := requirements/requirements.lock
STAMP := $(VENV)/.lock-stamp
# One Keras for every process, children included (see README, "Keras").
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv demo test check lint bench flink-job-server clean

venv:
	@want="$$(cat $(LOCK) pyproject.toml | sha256sum | cut -c1-64)"; \
	if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$$want" ]; then exit 0; fi; \
	set -e; \
	echo ">> building $(VENV) from $(LOCK)"; \
	rm -rf $(VENV); \
	$(PYTHON) -m venv $(VENV); \
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv==0.13.9; \
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps --require-hashes -r $(LOCK); \
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python \
	    tfx==1.16.0 ml-pipelines-sdk==1.16.0; \
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .; \
	$(VENV)/bin/python -m pip check; \
	echo "$$want" > $(STAMP)

demo: venv
	$(VENV)/bin/quantgate run

test: venv
	$(VENV)/bin/python -m pytest -q tests

# The quick tier: ruff, then every test without a pipeline run (markers `pipeline` and `slow`, tests/conftest.py).
check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -p no:warnings -m "not pipeline and not slow" tests

lint: venv
	$(VENV)/bin/ruff check .

# Beam's Flink job server (pinned jars: pipelines/flink_job_server/) into ~/.cache/quantgate, for --runner flink.
flink-job-server: venv
	$(VENV)/bin/python -c "from quantgate.pipelines.flink import fetch_job_server; print(fetch_job_server())"

bench: venv
	$(VENV)/bin/python -m pytest -q -s tests/benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
