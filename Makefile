# poolkeeper: `make run` opens the TUI, `make test` runs the whole suite.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-stamp

# Debian packages of the tools every pool type shares (images, loop devices, wipes) and
# the test harness uses (sfdisk, virsh, xmllint for virt-xml-validate, tmux for the
# real-terminal tests, libvirtd for the byte-for-byte comparison with virsh on the same
# pool, openssh-server and netcat-openbsd for the qemu+ssh test: its own sshd on 127.0.0.1
# in front of that libvirtd, `nc -U` to its socket on the far side). Each pool type's own
# packages, and its tests' servers, come from its driver:
# `python -m backends.drivers --packages --tests`.
# libvirt connections (`poolkeeper -c URI`): the extra `libvirt` (libvirt-python) is built
# by pip against libvirt-dev; `make run` and `make test` both install it.
LIBVIRT_APT_PACKAGES := libvirt-dev pkg-config gcc

BASE_APT_PACKAGES := qemu-utils qemu-block-extra util-linux fdisk mount scrub \
	libvirt-clients libvirt-daemon libxml2-utils tmux openssh-server openssh-client \
	netcat-openbsd

.PHONY: run test bench lint system-deps venv clean screenshots fuzz

$(STAMP): pyproject.toml
	@scripts/install-system-deps python3-venv $(LIBVIRT_APT_PACKAGES)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[libvirt]'
	touch $(STAMP)

# The test tools (pytest, ruff, ...) only for what runs them: `make run` does without.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,libvirt]'
	touch $(TEST_STAMP)

venv: $(STAMP)

system-deps: $(STAMP)
	@types=$$($(PY) -m backends.drivers --packages --tests) && \
		scripts/install-system-deps $(BASE_APT_PACKAGES) $$types

run: $(STAMP)
	$(VENV)/bin/poolkeeper

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check backends cli tui tests bench fuzz

test: system-deps $(TEST_STAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The benchmarks' peers: libvirt itself (a private libvirtd) through its Python binding,
# which pip builds against libvirt-dev. `make bench BENCH_ARGS=--quick` is a smoke test.
BENCH_APT_PACKAGES := libvirt-daemon libvirt-dev pkg-config gcc
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	@scripts/install-system-deps $(BENCH_APT_PACKAGES)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: system-deps $(BENCH_STAMP)
	$(PY) bench/refresh.py $(BENCH_ARGS)
	$(PY) bench/start.py $(BENCH_ARGS)
	$(PY) bench/tui.py $(BENCH_ARGS)
	$(PY) bench/firstrows.py $(BENCH_ARGS)
	$(PY) bench/probe.py $(BENCH_ARGS)
	$(PY) bench/clone.py $(BENCH_ARGS)
	$(PY) bench/wipe.py $(BENCH_ARGS)
	$(PY) bench/idle.py $(BENCH_ARGS)
	$(PY) bench/cli.py $(BENCH_ARGS)
	$(PY) bench/connect.py $(BENCH_ARGS)
	$(PY) bench/host_listing.py $(BENCH_ARGS)
	$(PY) bench/fleet.py $(BENCH_ARGS)

# The long fuzz run (atheris and Hypothesis, fuzz/run.py): FUZZ_SECONDS in all, split
# between the targets, then a summary. `make test` runs the short Hypothesis part.
FUZZ_SECONDS ?= 600
FUZZ_STAMP := $(VENV)/.fuzz-stamp

$(FUZZ_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,fuzz]'
	touch $(FUZZ_STAMP)

fuzz: system-deps $(FUZZ_STAMP)
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

# The README's screenshots (screenshots/*.svg) from the real app on a demo root.
screenshots: $(STAMP)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
