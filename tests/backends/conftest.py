"""Fixtures of the backend tests over libvirt connections: the private libvirtd of the
CLI's tests (tests/cli/conftest.py), one per test module."""

from __future__ import annotations

from tests.cli.conftest import host

__all__ = ["host"]
