"""Fuzzing of poolkeeper: the atheris harnesses and `make fuzz` (see README.md here)."""
