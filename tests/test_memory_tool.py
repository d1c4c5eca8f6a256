"""``StoreMemoryTool``: Claude's memory tool over a real SQLite store and the real embedding model."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.lib.tools import BetaAbstractMemoryTool, ToolError

from memory import Memory, get_settings
from memory.errors import InvalidInputError
from memory.memory_tool import NOTES, TOOL_TAG, StoreMemoryTool, check_path
from memory.models import MemoryStatus, Scope
from memory.stores.sqlite import SQLiteStore


@pytest.fixture
def tool(memory: Memory) -> StoreMemoryTool:
    return StoreMemoryTool(memory, "alice")


def run(tool: StoreMemoryTool, command: str, **args: Any) -> Any:
    """Call the tool exactly as the SDK's tool runner does: a dict input."""
    return tool.call({"command": command, **args})


def error(tool: StoreMemoryTool, command: str, **args: Any) -> str:
    with pytest.raises(ToolError) as caught:
        run(tool, command, **args)
    return str(caught.value)


def snapshot(memory: Memory, user: str = "alice") -> list[tuple[str, str, dict[str, Any]]]:
    entries = memory.list(user, include_inactive=True, limit=1000)
    return sorted((e.id, e.content, e.metadata) for e in entries)


def test_is_the_sdk_memory_tool(tool: StoreMemoryTool) -> None:
    assert isinstance(tool, BetaAbstractMemoryTool)
    assert tool.to_dict() == {"type": "memory_20250818", "name": "memory"}
    assert tool.max_file_chars == get_settings().max_content_chars


def test_constructor_does_no_io_and_checks_limits(embedder: Any) -> None:
    store = SQLiteStore(":memory:")
    StoreMemoryTool(Memory(store, embedder, get_settings()), "alice")
    assert store._conn is None  # nothing opened
    memory = Memory(store, embedder, get_settings(max_content_chars=100))
    with pytest.raises(InvalidInputError, match="MEMORY_MAX_CONTENT_CHARS"):
        StoreMemoryTool(memory, "alice", max_file_chars=101)
    with pytest.raises(InvalidInputError, match="max_files"):
        StoreMemoryTool(memory, "alice", max_files=0)
    with pytest.raises(InvalidInputError, match="user_id"):
        StoreMemoryTool(memory, 42)  # type: ignore[arg-type]


def test_view_of_an_empty_root(tool: StoreMemoryTool) -> None:
    assert run(tool, "view", path="/memories") == (
        "Here're the files and directories up to 2 levels deep in /memories, excluding hidden items:\n0B\t/memories"
    )


def test_create_is_a_memory_found_by_meaning(tool: StoreMemoryTool, memory: Memory) -> None:
    text = "# Preferences\nThe user prefers metric units.\nThey drink oat milk coffee.\n"
    assert run(tool, "create", path="/memories/preferences.md", file_text=text) == (
        "File created successfully at: /memories/preferences.md"
    )
    [entry] = memory.list("alice")
    assert entry.metadata["path"] == "/memories/preferences.md"
    assert TOOL_TAG in entry.tags and entry.memory_type == "fact"
    assert entry.content == "# Preferences The user prefers metric units. They drink oat milk coffee."
    hits = memory.search("alice", "which measurement system should I use?", mode="vector")
    assert hits[0].entry.id == entry.id
    assert memory.list("alice", tags=[TOOL_TAG])[0].id == entry.id
    assert run(tool, "view", path="/memories/preferences.md") == (
        "Here's the content of /memories/preferences.md with line numbers:\n"
        "     1\t# Preferences\n     2\tThe user prefers metric units.\n     3\tThey drink oat milk coffee.\n     4\t"
    )


def test_create_refuses_an_existing_path_and_a_folder(tool: StoreMemoryTool) -> None:
    run(tool, "create", path="/memories/a/b.md", file_text="first")
    assert error(tool, "create", path="/memories/a/b.md", file_text="other") == "File /memories/a/b.md already exists"
    assert "is a directory" in error(tool, "create", path="/memories/a", file_text="x")
    assert "is a file" in error(tool, "create", path="/memories/a/b.md/c", file_text="x")
    assert "is a directory" in error(tool, "create", path="/memories/", file_text="x")
    assert "reserved" in error(tool, "create", path=f"{NOTES}/mine.txt", file_text="x")
    assert "empty" in error(tool, "create", path="/memories/blank.md", file_text=" \n ")


def test_view_root_folder_and_file_ranges(tool: StoreMemoryTool) -> None:
    run(tool, "create", path="/memories/projects/alpha/notes.md", file_text="deep file")
    run(tool, "create", path="/memories/projects/todo.md", file_text="one\ntwo\nthree\nfour")
    run(tool, "create", path="/memories/projects-old.md", file_text="x" * 2000)
    assert run(tool, "view", path="/memories").split("\n")[1:] == [
        "2.0K\t/memories",
        "27B\t/memories/projects/",
        "9B\t/memories/projects/alpha/",
        "18B\t/memories/projects/todo.md",
        "2.0K\t/memories/projects-old.md",
    ]
    assert run(tool, "view", path="/memories/projects/").split("\n")[1:] == [
        "27B\t/memories/projects",
        "9B\t/memories/projects/alpha/",
        "9B\t/memories/projects/alpha/notes.md",
        "18B\t/memories/projects/todo.md",
    ]
    ranged = run(tool, "view", path="/memories/projects/todo.md", view_range=[2, 3])
    assert ranged.split("\n")[1:] == ["     2\ttwo", "     3\tthree"]
    to_end = run(tool, "view", path="/memories/projects/todo.md", view_range=[3, -1])
    assert to_end.split("\n")[1:] == ["     3\tthree", "     4\tfour"]
    assert "view_range" in error(tool, "view", path="/memories/projects/todo.md", view_range=["a", 2])
    missing = "The path /memories/nope does not exist. Please provide a valid path."
    assert error(tool, "view", path="/memories/nope") == missing


def test_memories_stored_by_other_means_are_notes(tool: StoreMemoryTool, memory: Memory) -> None:
    entry = memory.remember("alice", "Alice's sister is called Jo").entry
    note = f"{NOTES}/{entry.id}.txt"
    listing = run(tool, "view", path="/memories")
    assert f"\t{NOTES}/\n" in listing and listing.endswith(f"\t{note}")
    assert run(tool, "view", path=note).endswith("     1\tAlice's sister is called Jo")
    run(tool, "str_replace", path=note, old_str="Jo", new_str="Joanna")
    assert memory.get("alice", entry.id).content == "Alice's sister is called Joanna"
    assert "Cannot delete" in error(tool, "delete", path=NOTES)
    assert "Cannot rename" in error(tool, "rename", old_path=NOTES, new_path="/memories/all")
    assert run(tool, "rename", old_path=note, new_path="/memories/family.md").startswith("Successfully renamed")
    adopted = memory.get("alice", entry.id)
    assert adopted.metadata["path"] == "/memories/family.md" and TOOL_TAG in adopted.tags
    assert run(tool, "view", path="/memories/family.md").endswith("     1\tAlice's sister is called Joanna")


def test_duplicate_text_names_the_path_that_holds_it(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/a.md", file_text="The user lives in Lyon.")
    message = error(tool, "create", path="/memories/b.md", file_text="the user lives in lyon")
    assert "/memories/a.md already holds this exact text" in message
    run(tool, "create", path="/memories/b.md", file_text="The user lives in Paris.")
    message = error(tool, "str_replace", path="/memories/b.md", old_str="Paris", new_str="Lyon")
    assert "/memories/a.md already holds" in message
    assert {e.content for e in memory.list("alice")} == {"The user lives in Lyon.", "The user lives in Paris."}


def test_str_replace(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/t.md", file_text="a\nb\ncat\nd\ne\nf\n")
    result = run(tool, "str_replace", path="/memories/t.md", old_str="cat", new_str="dog")
    assert result == (
        "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n"
        "     1\ta\n     2\tb\n     3\tdog\n     4\td\n     5\te"
    )
    [entry] = memory.list("alice")
    assert entry.content == "a b dog d e f"
    assert [e.kind for e in memory.history("alice", entry.id)] == ["added", "updated"]
    assert error(tool, "str_replace", path="/memories/t.md", old_str="zebra", new_str="x") == (
        "No replacement was performed, old_str `zebra` did not appear verbatim in /memories/t.md."
    )
    run(tool, "create", path="/memories/u.md", file_text="ab\nab\nx")
    assert error(tool, "str_replace", path="/memories/u.md", old_str="ab", new_str="x") == (
        "No replacement was performed. Multiple occurrences of old_str `ab` in lines: 1, 2. Please ensure it is unique"
    )
    assert error(tool, "str_replace", path="/memories", old_str="a", new_str="b") == "The path /memories is not a file."


def test_insert(tool: StoreMemoryTool) -> None:
    run(tool, "create", path="/memories/list.md", file_text="two\nthree\n")
    assert run(tool, "insert", path="/memories/list.md", insert_line=0, insert_text="one\n") == (
        "The file /memories/list.md has been edited."
    )
    run(tool, "insert", path="/memories/list.md", insert_line=3, insert_text="four")
    assert run(tool, "view", path="/memories/list.md").split("\n")[1:] == [
        "     1\tone",
        "     2\ttwo",
        "     3\tthree",
        "     4\tfour",
        "     5\t",
    ]
    assert error(tool, "insert", path="/memories/list.md", insert_line=5, insert_text="x") == (
        "Invalid `insert_line` parameter: 5. It should be within the range [0, 4]."
    )
    assert "insert_line" in error(tool, "insert", path="/memories/list.md", insert_line=-1, insert_text="x")
    assert "does not exist" in error(tool, "insert", path="/memories/none.md", insert_line=0, insert_text="x")


def test_rename_file_and_folder(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/a.md", file_text="alpha")
    run(tool, "create", path="/memories/b.md", file_text="beta")
    run(tool, "create", path="/memories/dir/c.md", file_text="gamma")
    assert error(tool, "rename", old_path="/memories/a.md", new_path="/memories/b.md") == (
        "The destination /memories/b.md already exists"
    )
    assert error(tool, "rename", old_path="/memories/a.md", new_path="/memories/dir") == (
        "The destination /memories/dir already exists"
    )
    assert error(tool, "rename", old_path="/memories/zz.md", new_path="/memories/y.md") == (
        "The path /memories/zz.md does not exist"
    )
    assert "into itself" in error(tool, "rename", old_path="/memories/dir", new_path="/memories/dir/sub")
    assert "reserved" in error(tool, "rename", old_path="/memories/a.md", new_path=f"{NOTES}/a.txt")
    assert "Cannot rename the /memories" in error(tool, "rename", old_path="/memories", new_path="/memories/x")
    ids = {e.metadata["path"]: e.id for e in memory.list("alice")}
    assert run(tool, "rename", old_path="/memories/a.md", new_path="/memories/archive/a.md") == (
        "Successfully renamed /memories/a.md to /memories/archive/a.md"
    )
    run(tool, "rename", old_path="/memories/dir", new_path="/memories/moved")
    after = {e.metadata["path"]: e.id for e in memory.list("alice")}
    assert after == {
        "/memories/archive/a.md": ids["/memories/a.md"],
        "/memories/b.md": ids["/memories/b.md"],
        "/memories/moved/c.md": ids["/memories/dir/c.md"],
    }
    assert run(tool, "view", path="/memories/moved/c.md").endswith("     1\tgamma")


def test_delete_file_and_folder(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/keep.md", file_text="keep me")
    run(tool, "create", path="/memories/old/a.md", file_text="old a")
    run(tool, "create", path="/memories/old/deeper/b.md", file_text="old b")
    run(tool, "create", path="/memories/older.md", file_text="not inside old/")
    first = memory.list("alice")
    assert run(tool, "delete", path="/memories/keep.md") == "Successfully deleted /memories/keep.md"
    assert run(tool, "delete", path="/memories/old") == "Successfully deleted /memories/old"
    assert [e.metadata["path"] for e in memory.list("alice")] == ["/memories/older.md"]
    assert error(tool, "delete", path="/memories/old") == "The path /memories/old does not exist"
    assert error(tool, "delete", path="/memories") == "Cannot delete the /memories directory itself"
    gone = next(e for e in first if e.metadata["path"] == "/memories/keep.md")
    assert [e.kind for e in memory.history("alice", gone.id)][-1] == "deleted"
    assert memory.store.get(Scope("alice"), gone.id) is None


def test_users_and_tenants_are_isolated(memory: Memory) -> None:
    alice, bob = StoreMemoryTool(memory, "alice"), StoreMemoryTool(memory, "bob")
    other_tenant = StoreMemoryTool(memory, "alice", tenant_id="acme")
    run(alice, "create", path="/memories/secret.md", file_text="Alice's PIN hint is her cat's name")
    memory.remember("alice", "Alice works at a bakery")
    for stranger in (bob, other_tenant):
        assert run(stranger, "view", path="/memories").endswith("0B\t/memories")
        assert "does not exist" in error(stranger, "view", path="/memories/secret.md")
        assert "does not exist" in error(stranger, "delete", path="/memories/secret.md")
        edit = {"path": "/memories/secret.md", "old_str": "cat", "new_str": "x"}
        assert "does not exist" in error(stranger, "str_replace", **edit)
        # Same path and same text in another scope is a separate file, not a duplicate.
        run(stranger, "create", path="/memories/secret.md", file_text="Alice's PIN hint is her cat's name")
        run(stranger, "delete", path="/memories/secret.md")
    assert len(memory.list("alice")) == 2 and memory.list("bob") == [] and memory.list("alice", tenant_id="acme") == []
    assert "Alice's PIN" in run(alice, "view", path="/memories/secret.md")


HOSTILE = [
    "../",
    "../etc/passwd",
    "/memories/../etc/passwd",
    "/memories/./a.md",
    "%2e%2e/",
    "/memories/%2e%2e/x",
    "/memories/a%2fb",
    "/etc/passwd",
    "/memories_evil/x",
    "memories/x",
    "",
    "/memories/a\x00b",
    "/memories/a\nb",
    "/memories/\u2024\u2024/x",
    "/memories/\uff0e\uff0e/x",
    "/memories/caf\u00e9.md",
    "/memories/a\\b",
    "/memories//a",
    "/memories/.hidden",
    "/memories/a b",
    "/memories/" + "a" * 4990,
    None,
    42,
]


def test_hostile_paths_are_refused_on_every_command(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/ok.md", file_text="a file that exists")
    memory.remember("alice", "a memory stored by other means")
    before = snapshot(memory)
    for bad in HOSTILE:
        calls: list[dict[str, Any]] = [
            {"command": "view", "path": bad},
            {"command": "create", "path": bad, "file_text": "pwned"},
            {"command": "str_replace", "path": bad, "old_str": "a", "new_str": "pwned"},
            {"command": "insert", "path": bad, "insert_line": 0, "insert_text": "pwned"},
            {"command": "delete", "path": bad},
            {"command": "rename", "old_path": bad, "new_path": "/memories/new.md"},
            {"command": "rename", "old_path": "/memories/ok.md", "new_path": bad},
        ]
        for call in calls:
            with pytest.raises(ToolError) as caught:
                tool.call(call)
            message = str(caught.value)
            assert "\x00" not in message and len(message) < 400, (call, message)
    assert snapshot(memory) == before
    assert [e.kind for e in memory.history("alice")] == ["added", "added"]


def test_path_messages_say_what_is_wrong() -> None:
    assert check_path("/memories/") == "/memories"
    assert check_path("/memories/a/b.md/") == "/memories/a/b.md"
    assert "would escape /memories" in _message("/memories/../etc/passwd")
    assert "Path must start with /memories" in _message("/memories_evil/x")
    assert "percent-encoding" in _message("/memories/%2e%2e/x")
    assert "look-alikes" in _message("/memories/\uff0e\uff0e/x")
    assert "control characters" in _message("/memories/a\x00b")
    assert "limit is 256" in _message("/memories/" + "a" * 4990)
    assert "empty segment" in _message("/memories//a")


def _message(path: str) -> str:
    with pytest.raises(ToolError) as caught:
        check_path(path)
    return str(caught.value)


def test_size_and_count_limits(memory: Memory) -> None:
    tool = StoreMemoryTool(memory, "alice", max_files=2, max_file_chars=50)
    assert "limit is 50" in error(tool, "create", path="/memories/big.md", file_text="x" * 51)
    run(tool, "create", path="/memories/a.md", file_text="z" + "y" * 49)
    assert "limit is 50" in error(tool, "str_replace", path="/memories/a.md", old_str="z", new_str="zz")
    assert "limit is 50" in error(tool, "insert", path="/memories/a.md", insert_line=1, insert_text="more")
    run(tool, "create", path="/memories/b.md", file_text="second")
    memory.remember("alice", "notes do not count against the tool's file limit")
    assert "already has 2 memory files" in error(tool, "create", path="/memories/c.md", file_text="third")
    note = next(p for p in tool.files() if p.startswith(NOTES))
    assert "already has 2 memory files" in error(tool, "rename", old_path=note, new_path="/memories/c.md")
    assert len(memory.list("alice")) == 3


def test_bad_inputs_are_tool_errors(tool: StoreMemoryTool) -> None:
    assert "Unknown command" in error(tool, "format_disk", path="/memories")
    assert "`file_text` must be a string" in error(tool, "create", path="/memories/a.md")
    assert "insert_line" in error(tool, "insert", path="/memories/a.md", insert_line="one", insert_text="x")
    with pytest.raises(ToolError, match="JSON object"):
        tool.call("view /memories")


def test_superseded_entries_are_not_files(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/a.md", file_text="The meeting is on Monday")
    [entry] = memory.list("alice")
    memory.retire("alice", entry.id)
    assert memory.get("alice", entry.id).status is MemoryStatus.SUPERSEDED
    assert run(tool, "view", path="/memories").endswith("0B\t/memories")
    run(tool, "create", path="/memories/a.md", file_text="The meeting is on Monday")


def test_clear_all_memory_keeps_notes(tool: StoreMemoryTool, memory: Memory) -> None:
    run(tool, "create", path="/memories/a.md", file_text="tool file")
    kept = memory.remember("alice", "a remembered fact").entry
    assert tool.clear_all_memory() == "All memory cleared"
    assert [e.id for e in memory.list("alice")] == [kept.id]


def test_a_large_user_sees_the_newest_notes_and_can_still_reach_any_note(memory: Memory, tool: StoreMemoryTool) -> None:
    from memory.memory_tool import NOTES_SHOWN
    from memory.models import MemoryEntry

    texts = [f"Note number {i} about topic {i * 7 % 13}" for i in range(NOTES_SHOWN + 30)]
    vectors = memory.embedder.embed(texts)
    entries = [
        MemoryEntry(user_id="alice", content=text, embedding=vector, embedding_model=memory.embedder.model_name,
                    created_at=1_700_000_000 + i)
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]  # fmt: skip
    memory.store.add_many(entries)
    tool.call({"command": "create", "path": "/memories/prefs/seat.md", "file_text": "Aisle seats"})

    listing = tool.call({"command": "view", "path": "/memories"})

    assert f"({NOTES_SHOWN} of {NOTES_SHOWN + 30} notes shown, newest first" in listing
    assert f"{NOTES}/{entries[-1].id}.txt" in listing and f"{NOTES}/{entries[0].id}.txt" not in listing
    assert "/memories/prefs/seat.md" in listing
    oldest = f"{NOTES}/{entries[0].id}.txt"
    assert "Note number 0 about topic 0" in tool.call({"command": "view", "path": oldest})
    tool.call({"command": "delete", "path": oldest})
    assert memory.store.get(Scope("alice"), entries[0].id) is None
