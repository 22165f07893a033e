"""textdesk's exception tree, split by whose fault it is.

    TextdeskError
    ├── ConfigurationError      the operator's: bad settings or business file (fails at start-up)
    ├── ChannelError            the caller's: bad signature or malformed webhook (-> 4xx at the edge)
    │   └── SignatureError
    ├── ProviderError           the model service's: timeout, rate limit, malformed output
    │   ├── ProviderUnavailable     timeouts, 429 and 5xx after retries, connection errors
    │   ├── ProviderRefusal         the model declined
    │   └── MalformedOutput         output failed schema validation (after repair)
    ├── ToolError               a tool refused: not the sender's booking, slot taken, cap reached
    └── EvalFileError           a malformed eval case file (CLI exit code 2)

Only the edges translate these: channels/ and web/ into HTTP responses, the CLI into exit codes.
"""

from __future__ import annotations

__all__ = [
    "ChannelError",
    "ConfigurationError",
    "EvalFileError",
    "MalformedOutput",
    "ProviderError",
    "ProviderRefusal",
    "ProviderUnavailable",
    "SignatureError",
    "TextdeskError",
    "ToolError",
]


class TextdeskError(Exception):
    """Base of every error textdesk raises on purpose."""


class ConfigurationError(TextdeskError):
    """Settings or the business file are wrong; raised at start-up."""


class ChannelError(TextdeskError):
    """A channel request is malformed."""


class SignatureError(ChannelError):
    """The request signature is missing or does not match."""


class ProviderError(TextdeskError):
    """The understanding provider failed."""


class ProviderUnavailable(ProviderError):
    """Timeout, rate limit or server error that outlasted the retry budget."""


class ProviderRefusal(ProviderError):
    """The model refused to answer."""


class MalformedOutput(ProviderError):
    """The model's output did not validate, even after one repair attempt."""


class ToolError(TextdeskError):
    """A tool refused to act (ownership, conflict, cap)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EvalFileError(TextdeskError):
    """A malformed eval case file; the message names file, case id and field."""

    def __init__(self, path: str, case_id: str | None, field: str, problem: str) -> None:
        self.path, self.case_id, self.field, self.problem = path, case_id, field, problem
        where = f"{path}: case {case_id!r}" if case_id else path
        super().__init__(f"{where}: field {field!r}: {problem}")
