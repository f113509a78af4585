"""The runtime core of one node: its kernel thread and tables, mailboxes and
actor processes. It imports nothing from ``dist``, ``cli`` or ``bench``
(``docs/architecture.md`` draws the layers)."""
from __future__ import annotations

__all__: list = []
