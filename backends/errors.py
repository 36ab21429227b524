"""One exception hierarchy. Every message says what was wrong and what to do about it."""

from __future__ import annotations


class PoolkeeperError(Exception):
    """Base of every error poolkeeper reports to a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class XMLError(PoolkeeperError):
    """A document that is not acceptable XML (malformed, DTD, entities, too large)."""


class ValidationError(PoolkeeperError):
    """Well-formed XML or an argument that breaks a rule; names the element or field."""

    def __init__(self, message: str, element: str | None = None, line: int | None = None) -> None:
        where = ""
        if element:
            where = f"<{element}>"
            if line:
                where += f" (line {line})"
            where += ": "
        super().__init__(where + message)
        self.element = element
        self.line = line


class InvalidName(ValidationError):
    """A pool or volume name that cannot be used safely."""


class InvalidSize(ValidationError):
    """A size that is not a number, has an unknown unit, or is out of range."""


class NotFound(PoolkeeperError):
    """No such pool, volume or job."""


class PoolNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class AlreadyExists(PoolkeeperError):
    """A name, UUID, target or source that another object already has."""


class StateError(PoolkeeperError):
    """The object is in the wrong state for the verb (pool inactive, not built, ...)."""


class Busy(PoolkeeperError):
    """Another job or process holds the pool or volume; refused at once, never waited on."""


class InUse(Busy):
    """A process (or a mount) uses the volume or device."""


class InsufficientSpace(PoolkeeperError):
    """Not enough free space in the pool for what was asked."""


class Unsupported(PoolkeeperError):
    """The pool type or format cannot do this."""


class UnsafePath(PoolkeeperError):
    """A path that leaves the pool, or a file of a kind we refuse to touch."""


class Cancelled(PoolkeeperError):
    """A job was cancelled by the user."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class ToolMissing(PoolkeeperError):
    """An external program is not installed."""

    def __init__(self, tool: str, package: str | None) -> None:
        hint = f"install it with: apt-get install {package}" if package else "install it"
        super().__init__(f"the program '{tool}' is not installed; {hint}")
        self.tool = tool
        self.package = package


class ToolFailed(PoolkeeperError):
    """An external program exited non-zero or timed out."""

    def __init__(self, argv: list[str], returncode: int | None, stderr: str) -> None:
        detail = stderr.strip().splitlines()
        tail = detail[-1][-500:] if detail else "no error output"  # a tool can print 16 MB
        if returncode is None:
            msg = f"'{argv[0]}' timed out: {tail}"
        else:
            msg = f"'{argv[0]}' failed (exit {returncode}): {tail}"
        super().__init__(msg)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
