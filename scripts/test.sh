#!/usr/bin/env bash
# Run temseg's tests (arguments go to pytest).
#
# The tests start real servers: local Ray runtimes, two-node Ray clusters on 127.0.0.2/3 and
# MLflow servers on 127.0.0.1. Ray 2.60 binds its servers to every interface whatever node
# address it is given, so where Linux allows it (unprivileged user namespaces) the tests run in
# a private network namespace that has nothing but loopback: whatever the tests start is then
# reachable from this machine's loopback alone. Elsewhere (macOS, locked-down kernels) pytest
# runs directly.
#
# First the layers (import-linter contracts in pyproject.toml): an upward import, Ray or
# MLflow below their rooms or torch in a pure module fails here, before any test runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! lint=$(PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/lint-imports --no-cache 2>&1); then
  echo "$lint" >&2
  exit 1
fi
echo "tests: import contracts kept (lint-imports)" >&2
# Test files run on TEMSEG_TEST_WORKERS pytest-xdist workers (default 2; each file's tests stay
# on one worker, in order, so a module's Ray runtime or cluster is not started twice). The suite
# mostly waits on Ray and MLflow start-ups, so two files at once fill the idle core; 1 runs
# the tests one by one in this process.
workers=${TEMSEG_TEST_WORKERS:-2}
if [ "$workers" -gt 1 ]; then
  set -- -n "$workers" --dist loadfile "$@"
fi
if [ "${TEMSEG_TEST_NETNS:-1}" = 1 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -rn true 2>/dev/null; then
  echo "tests: in a private network namespace (loopback only)" >&2
  exec unshare -rn bash -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
