# Entry points (docs/API.md section 7). `make run` and `make test` work from a fresh Debian 12
# host: they install the packages and the virtualenv first (provision/).

PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup test run bench stop-services clean

setup:
	bash provision/packages.sh
	bash provision/venv.sh

# The tests start their own redis-server and mariadbd; no system service is needed.
test: setup
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

# run.sh is one simple command, so make runs it without a shell and forwards SIGTERM to it.
# It serves OG_BIND (default 127.0.0.1:5000) through nginx, gunicorn behind it on
# var/run/gunicorn.sock (provision/run.sh).
run: setup
	bash provision/services.sh
	bash provision/run.sh

bench: setup
	$(PYTHON) -m benchmarks

# Stops the project's Redis, and first whatever a `make run` still has running (all of it,
# through run.sh if that is alive; what a killed run.sh left behind, by pid file).
stop-services:
	bash provision/services.sh stop

# Redis is stopped first: it must not keep writing an AOF that is being deleted.
clean: stop-services
	rm -rf var/
