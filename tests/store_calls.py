"""Every ``MemoryStore`` method but open and close, called with valid arguments: what the driver-error tests
of each store run against a broken schema, so no method can let a driver error escape untranslated."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence

from memory import MemoryEntry, MemoryStore, Ranking, Scope, SearchRequest
from memory.turns import TurnRecord

ALICE = Scope("alice")
PROTOCOL_METHODS = {name for name, f in vars(MemoryStore).items() if inspect.isfunction(f) and not name.startswith("_")}
CALLS: dict[str, Callable[[MemoryStore, MemoryEntry], object]] = {
    "add": lambda s, e: s.add(e),
    "add_many": lambda s, e: s.add_many([e]),
    "get": lambda s, e: s.get(ALICE, e.id),
    "get_by_hash": lambda s, e: s.get_by_hash(ALICE, e.content_hash),
    "list": lambda s, e: s.list(ALICE),
    "count": lambda s, e: s.count(ALICE),
    "search": lambda s, e: s.search(ALICE, SearchRequest(text="red bike", embedding=e.embedding, ranking=Ranking())),
    "update": lambda s, e: s.update(ALICE, e.id, {"importance": 0.9}),
    "delete": lambda s, e: s.delete(ALICE, e.id),
    "forget_user": lambda s, e: s.forget_user(ALICE),
    "prune": lambda s, e: s.prune(ALICE, 0, ranking=Ranking(), now=0.0),
    "history": lambda s, e: s.history(ALICE),
    "version": lambda s, e: s.version(ALICE),
    "save_turn": lambda s, e: s.save_turn(TurnRecord(turn_id="turn-1", user_id="alice")),
    "get_turn": lambda s, e: s.get_turn(ALICE, "turn-1"),
    "list_turns": lambda s, e: s.list_turns(ALICE),
    "scopes": lambda s, e: s.scopes(),
    "try_lease": lambda s, e: s.try_lease(ALICE, "run-1", 60),
    "release_lease": lambda s, e: s.release_lease(ALICE, "run-1"),
}


def race_for_lease(stores: Sequence[MemoryStore], scope: Scope) -> list[int]:
    """Every store asks for ``scope``'s lease at once (each as owner ``run-<n>``); the indexes that got it."""
    barrier, won = threading.Barrier(len(stores)), []

    def race(n: int) -> None:
        barrier.wait()
        if stores[n].try_lease(scope, f"run-{n}", 60):
            won.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won
