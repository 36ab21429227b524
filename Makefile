# poolkeeper: `make run` opens the TUI, `make test` runs the whole suite.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Debian packages of the tools the backends drive (and the tests run for real).
APT_PACKAGES := qemu-utils qemu-block-extra parted lvm2 e2fsprogs xfsprogs btrfs-progs \
	dosfstools util-linux fdisk mount tgt libiscsi-bin open-iscsi nfs-common nfs-ganesha \
	nfs-ganesha-vfs rpcbind scrub libvirt-clients python3-venv

.PHONY: run test bench lint system-deps venv clean screenshots

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
	$(VENV)/bin/ruff check backends tui tests bench

test: system-deps $(STAMP) lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/refresh.py
	$(PY) bench/tui.py

# The README's screenshots (screenshots/*.svg) from the real app on a demo root.
screenshots: $(STAMP)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
