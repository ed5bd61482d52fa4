"""User-facing errors: one line that names the setting, the bad value and what is allowed."""


class AcaiError(Exception):
    """Base class of every error the tool reports without a traceback."""


class ConfigError(AcaiError):
    """A setting is missing, misspelt, of the wrong type or out of range."""

    def __init__(self, setting: str, value: object, allowed: str):
        self.setting, self.value, self.allowed = setting, value, allowed
        super().__init__(f"{setting}={value!r} is not valid: {allowed}")


class DatasetError(AcaiError):
    """A dataset cannot be found, read or does not suit the model."""


class TrackingError(AcaiError):
    """The MLflow store cannot be reached or has no such run/model."""


class TrainingError(AcaiError):
    """Training stopped on a numerical fault (NaN/Inf in a loss)."""


class Interrupted(AcaiError):
    """SIGINT or SIGTERM stopped training after a whole step; the exit status is 128 + the signal."""

    def __init__(self, message: str, signum: int, step: int):
        import signal

        self.signum, self.step = signum, step
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(message)


def first_line(error: object, limit: int | None = None, default: str = "") -> str:
    """The first line of an error's message (or of any text), stripped and cut to `limit` characters;
    `default` when the message is empty. For one-line reports of an error from a library."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else default


def one_line(text: object) -> str:
    """All of a text on one line: each run of white space (newlines included) folded to one space."""
    return " ".join(str(text).split())
