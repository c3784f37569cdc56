"""The bare-RQ baseline: a job that does nothing."""


def noop() -> None:
    return None
