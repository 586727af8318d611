"""Every error lineage raises on purpose.

Each error says what was given, why it is refused and how to fix it. They survive
pickling (Ray moves exceptions between processes), which is why every constructor
takes only plain strings and passes all of them to Exception.__init__.
"""

from __future__ import annotations


class LineageError(Exception):
    """Base class: `what` was given, `why` it is refused, `fix` says what to do."""

    def __init__(self, what: str, why: str, fix: str = "") -> None:
        super().__init__(what, why, fix)
        self.what = what
        self.why = why
        self.fix = fix

    def __str__(self) -> str:
        text = f"{self.what}: {self.why}"
        return f"{text}. {self.fix}" if self.fix else text


class MalformedWeightsError(LineageError):
    """A weights file is corrupt, truncated or lies about its contents."""


class MalformedMetadataError(LineageError):
    """A metadata file (config, adapter config, index, card) is oversized, too deeply
    nested, not parseable, or holds a field of the wrong type or out of range."""


class ResourceLimitError(LineageError):
    """An input needs more memory or address space than this machine grants."""


class UnsafeFormatError(LineageError):
    """A pickle-based format was refused because it can execute code when loaded."""


class ModelNotFoundError(LineageError):
    """A model path, repo id or catalog id does not resolve to anything readable."""


class IncompatibleModelsError(LineageError):
    """Two or more models cannot be compared or merged tensor by tensor."""


class UnknownNameError(LineageError):
    """A name (method, metric, parameter, preset...) is not one of the valid ones."""

    @classmethod
    def of(cls, kind: str, given: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
        return cls(
            f"{kind} {given!r}",
            f"is not a known {kind}",
            f"Valid {kind}s: {', '.join(sorted(valid))}",
        )


class SpecError(LineageError):
    """A user-written spec or recipe (YAML/TOML/JSON) is invalid."""


class CatalogError(LineageError):
    """The catalog directory is missing, locked or inconsistent."""


class ReadOnlyQueryError(LineageError):
    """A `lineage sql` statement tried to write or reach outside the catalog."""


class HubError(LineageError):
    """A Hub (or Hub-compatible endpoint) call failed for good after retries."""
