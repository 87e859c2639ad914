# The two commands of the README: `make setup run` (set up, then the local run) and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip

.PHONY: setup run plan test lint

setup:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus espeak-ng sox libsox-fmt-all
	test -x $(PY) || python3 -m venv .venv
	# torch first and pinned: a dependency asking for plain `torch` must find it satisfied (CPU build).
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements-dev.txt

run: plan

plan:
	$(PY) -m infra.plan --stack dev
	$(PY) -m infra.plan --stack prod

test:
	$(PY) -m pytest

lint:
	.venv/bin/ruff check .
