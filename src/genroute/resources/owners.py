"""Who owns a resource (a file, a cached content, a batch), and who may see it.

A resource belongs to the team of the key that made it, or to that key when it has no
team: `team:<team_id>` or `key:<sha256 of the key>`. The master key sees every resource;
on an open gateway (no master key, no database) nobody is told apart, and every resource
is everyone's (owner None). Another owner's resource is answered exactly as a missing one,
404 NOT_FOUND (`Access.hidden`), for every use of it (get, delete, download, cancel, a
model call naming it), so its existence is not revealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genroute.call import Caller
from genroute.errors import NotFound

__all__ = ["Access", "access_for"]


@dataclass(frozen=True, slots=True)
class Access:
    """What one caller may see: its own owner tag, or everything."""

    owner: str | None
    sees_all: bool = False

    def may_see(self, owner: str | None) -> bool:
        """Whether a resource with this owner is visible to the caller."""
        return self.sees_all or owner == self.owner

    @staticmethod
    def hidden(kind: str, name: str) -> NotFound:
        """The answer for a resource that is missing, expired or someone else's (the same
        for all three)."""
        return NotFound(
            f"{kind} {name} was not found: it does not exist, has expired, or belongs to "
            "another team or key."
        )


def access_for(caller: Caller, is_master: Callable[[str | None], bool]) -> Access:
    """The access of a caller: the master key sees all; a key with a team, its team's;
    any other key, its own; no key at all (an open gateway), everything unowned."""
    if caller.key_hash is None:
        return Access(None, sees_all=False)
    if is_master(caller.key_hash):
        return Access(f"key:{caller.key_hash}", sees_all=True)
    if caller.team_id:
        return Access(f"team:{caller.team_id}")
    return Access(f"key:{caller.key_hash}")
