"""Handlers on botocore's events in every boto3 client created from now on.

This is how moto's own in-process mock hooks in, and how the local runtime
watches or answers calls moto does not model (ses_outbox.py, ses_account.py),
from whichever process makes them. Clients created before `install` keep
their handlers: callers reset cached clients (environment.apply does).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from botocore import handlers as botocore_handlers

Hook = tuple[str, Callable[..., Any]]


def install(hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        if hook not in botocore_handlers.BUILTIN_HANDLERS:
            botocore_handlers.BUILTIN_HANDLERS.append(hook)


def uninstall(hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        while hook in botocore_handlers.BUILTIN_HANDLERS:
            botocore_handlers.BUILTIN_HANDLERS.remove(hook)
