# The two commands: `make run` (the whole stack with demo data) and `make test`.
# The logic lives in scripts/devstack.py; these targets only name it.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
ifeq ($(PYTHON),)
$(error Python 3.11 not found: install it (Debian 12: apt-get install python3 python3-venv) or pass PYTHON=/path/to/python3.11)
endif
DEVSTACK := $(PYTHON) scripts/devstack.py

# `make test PYTEST_ARGS="tests/core -k seed"` passes the arguments on to pytest.
export PYTEST_ARGS

.PHONY: help run test prepare venv services

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run:  ## Prepare, then run MLflow, the web server, Celery worker and beat with demo data; Ctrl-C stops all
	$(DEVSTACK) run

test:  ## Prepare, then run the test suite (extra pytest arguments in PYTEST_ARGS)
	$(DEVSTACK) test

prepare:  ## Virtualenv, dependencies, PostgreSQL, Redis and the databases
	$(DEVSTACK) prepare

venv:  ## Only the virtualenv and its dependencies (.venv)
	$(DEVSTACK) venv

services:  ## Only PostgreSQL, Redis and the databases
	$(DEVSTACK) services
