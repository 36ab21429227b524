# poolkeeper: `make run` opens the TUI, `make test` runs the whole suite.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Debian packages of the tools the backends drive (and the tests run for real).
APT_PACKAGES := qemu-utils qemu-block-extra parted lvm2 e2fsprogs xfsprogs btrfs-progs \
	dosfstools util-linux fdisk mount tgt libiscsi-bin open-iscsi nfs-common nfs-ganesha \
	nfs-ganesha-vfs rpcbind scrub libvirt-clients python3-venv tmux

.PHONY: run test bench lint system-deps venv clean screenshots fuzz

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@scripts/install-system-deps $(APT_PACKAGES)

run: $(STAMP)
	$(VENV)/bin/poolkeeper

lint: $(STAMP)
	$(VENV)/bin/ruff check backends cli tui tests bench fuzz

test: system-deps $(STAMP) lint
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
	$(PY) bench/probe.py $(BENCH_ARGS)
	$(PY) bench/clone.py $(BENCH_ARGS)
	$(PY) bench/wipe.py $(BENCH_ARGS)

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
