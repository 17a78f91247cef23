"""The reconcile contract (controller-runtime's ``pkg/reconcile``).

A reconciler is called with a :class:`Request` naming one object and looks at the whole current
state of that object; it never sees the event that woke it. Its outcome drives the workqueue:

* returns ``Result()`` → ``forget`` the key (its failure count resets);
* returns ``Result(requeue_after=s)`` → ``forget``, then ``add_after(s)``;
* returns ``Result(requeue=True)`` → ``add_rate_limited`` (backoff grows);
* raises :class:`TerminalError` → ``forget``, no requeue; the reconciler has recorded why in a
  condition, and only a change to the object (a new event) will bring the key back;
* raises anything else → ``add_rate_limited``, the error is logged and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Reconciler", "Request", "Result", "TerminalError"]


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """The key of one object: ``namespace`` is ``""`` for cluster-scoped objects."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    requeue: bool = False
    requeue_after: float = 0.0


class TerminalError(Exception):
    """An error that retrying cannot fix; the key is not requeued."""


class Reconciler(Protocol):
    def reconcile(self, request: Request) -> Result: ...
