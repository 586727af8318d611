"""How every entry point (`lineage ...`, `python -m jobs.<name>`) meets the user.

- Bad arguments: one line `PROG: error: ...` naming the fix, exit 1 (argparse's own
  habit is the whole usage block and exit 2).
- A refused input (LineageError), a missing file, a Ray cluster that refuses us: one line
  on stderr, exit 1, no traceback.
- A closed pipe (`lineage sql ... | head -2`): stop quietly.
- Ctrl-C: one line, exit 130.
- Everything printed goes through an escaping writer, so control characters from hostile
  metadata (ANSI escapes in a model id, a card, an error) never reach the terminal raw.
A traceback is still shown for what is not the user's doing: a bug should be reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import NoReturn

from jobs.output import EscapingWriter, escape
from lineage.errors import LineageError

EXIT_BAD_INPUT = 1
EXIT_INTERRUPTED = 130

# Ray's error for a cluster that does not accept our token: named, not imported (most
# entry points never import ray).
_RAY_USER_ERRORS = {"AuthenticationError"}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit 1; subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        fix = f"run `{self.prog} --help` for the options"
        sys.stderr.write(escape(f"{self.prog}: error: {message}; {fix}") + "\n")
        raise SystemExit(EXIT_BAD_INPUT)


def one_line(text: str) -> str:
    """A message folded onto one line (multi-line library errors, DuckDB's caret block)."""
    parts = [p.strip() for p in str(text).splitlines()]
    return " | ".join(p for p in parts if p and set(p) != {"^"})


@contextmanager
def escaped_output():
    """stdout/stderr escape control characters for the duration (restored after, so an
    in-process caller such as a test or the demo gets its own streams back)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingWriter(out), EscapingWriter(err, keep="\n\t\r")
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _fail(prog: str, message: str, code: int = EXIT_BAD_INPUT) -> int:
    sys.stderr.write(f"{prog}: error: {one_line(message)}\n")
    return code


def _quiet_broken_pipe() -> int:
    # Point stdout at /dev/null so the interpreter's final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 0


def run_entry(prog: str, body: Callable[[], int]) -> int:
    """Run `body` (parse arguments, do the work, return an exit code) the way the user
    should see it; returns the exit code."""
    with escaped_output():
        try:
            return int(body() or 0)
        except SystemExit as done:  # argparse --help / errors: already printed
            if done.code is None or isinstance(done.code, int):
                return done.code or 0
            return _fail(prog, str(done.code))
        except BrokenPipeError:
            return _quiet_broken_pipe()
        except KeyboardInterrupt:
            return _fail(prog, "interrupted", EXIT_INTERRUPTED)
        except LineageError as err:
            return _fail(prog, str(err))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                PermissionError) as err:
            where = f" {err.filename!r}" if err.filename else ""
            return _fail(prog, f"{err.strerror or err}:{where}. Check the path and try again")
        except ConnectionError as err:
            return _fail(prog, f"cannot reach the Ray cluster: {err}. Start it with "
                         "`ray start --head`, or check RAY_ADDRESS")
        except Exception as err:
            if type(err).__name__ not in _RAY_USER_ERRORS:
                raise
            return _fail(prog, f"Ray refused the connection: {err}")
