"""The base class of the errors a user can fix: their message says what is wrong and what to do,
so the command line prints it as one message and exits with status 2 instead of a traceback.
Each keeps its natural built-in base too (a ConfigError is still a ValueError)."""
from __future__ import annotations


class UserError(Exception):
    """An expected error whose message is the whole story (bad config, data, cache, order of stages)."""


class MissingInput(UserError, ValueError):
    """A stage needs what an earlier stage writes and it is not there yet ("run `teso features` first")."""
