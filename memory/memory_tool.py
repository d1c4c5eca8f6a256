"""Claude's client-side memory tool (``memory_20250818``) with this project's store as its disk.

``StoreMemoryTool`` is an ``anthropic.lib.tools.BetaAbstractMemoryTool`` for one user of one tenant: give it
to ``client.beta.messages.tool_runner(tools=[...])``. Results and error texts mirror the SDK's
``BetaLocalFilesystemMemoryTool``, so Claude sees what it knows.

* A file is an ACTIVE entry tagged ``memory-tool`` (``memory_type`` ``fact``) with its path in
  ``metadata["path"]``. ``content`` is the file text with whitespace collapsed (as every memory is), so
  ``Memory.search`` and the memory block find it; the exact text, newlines included, is kept in
  ``metadata["text"]`` (``content`` wins if changed by other means). Folders derive from paths.
* Other memories (``Memory.remember``, write-back) appear as ``/memories/notes/<id>.txt``: Claude may view,
  edit and delete them, and renaming one out of ``notes/`` adopts it as a tool file. Nothing is created or
  moved into ``notes/``, and the folder cannot be deleted or renamed whole (that would forget everything).
  An entry whose stored path is invalid, or taken by a newer file, is shown as a note too. A user may hold
  thousands of memories, so a command reads only the tool's files (the store's tag filter) and the note its
  path names; a view of /memories or of the notes folder lists the newest ``NOTES_SHOWN`` notes and says how
  many it left out (measured at 10,000 memories: 40 ms and 3 KB, against 1.4 s and 570 KB listing all).
* Writes skip ``Memory.remember``'s dedup, which would merge into or supersede a *different* file: create
  embeds and calls ``store.add``; edits and renames are ``Memory.update`` (history kept); delete is
  ``Memory.delete``. A user holds each text once (the store refuses a copy): that is a tool error that
  names the path already holding it.

Paths are ``/memories`` or ``/memories/<name>/...`` with names of ASCII letters, digits, ``.``, ``_``, ``-``
(not starting with ``.``), 256 characters at most; a trailing ``/`` is ignored. Anything else (``..``,
``//``, ``\\``, control characters, ``%xx``, Unicode look-alikes, relative paths) is a ``ToolError`` before
any read or write.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anthropic.lib.tools import BetaAbstractMemoryTool, ToolError

from memory.errors import DuplicateContentError, InvalidInputError, MemoryNotFoundError
from memory.models import DEFAULT_TENANT, MemoryEntry, MemoryFilter, Scope, content_hash, normalize_content

if TYPE_CHECKING:
    from anthropic.types import beta as sdk

    from memory.service import Memory

ROOT = "/memories"
NOTES = "/memories/notes"
TOOL_TAG = "memory-tool"
MAX_PATH_CHARS = 256
LINE_NUMBER_WIDTH = 6  # as the SDK's local backend: line numbers right-aligned to six columns
COMMANDS = frozenset({"view", "create", "str_replace", "insert", "delete", "rename"})
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_PAGE = 500
NOTES_SHOWN = 50  # a directory view lists the newest notes only: a user may hold thousands of memories


def _shown(path: str) -> str:
    """A path as it may appear in a message: hostile input is escaped and cut, never echoed raw."""
    return path if path.isprintable() and len(path) <= 80 else repr(path[:80]) + ("..." if len(path) > 80 else "")


def check_path(path: object, name: str = "path") -> str:
    """The canonical form of a ``/memories`` path, or a ``ToolError`` saying what is wrong with it."""
    if not isinstance(path, str):
        raise ToolError(f"`{name}` must be a string such as /memories/preferences.md, got {type(path).__name__}")
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"Path is {len(path)} characters long; the limit is {MAX_PATH_CHARS}")
    if path != ROOT and not path.startswith(ROOT + "/"):
        raise ToolError(f"Path must start with /memories, got: {_shown(path)}")
    if not path.isascii():
        raise ToolError(f"Path {_shown(path)} has non-ASCII characters (look-alikes of '.' or '/' are refused)")
    if any(not ch.isprintable() for ch in path):
        raise ToolError(f"Path {_shown(path)} contains control characters")
    path = path[:-1] if path.endswith("/") else path
    for segment in path[len(ROOT) + 1 :].split("/") if path != ROOT else []:
        if segment in (".", ".."):
            raise ToolError(f"Path {_shown(path)} would escape /memories directory")
        if not segment:
            raise ToolError(f"Path {_shown(path)} has an empty segment (//)")
        if "%" in segment or "\\" in segment:
            raise ToolError(f"Path {_shown(path)} contains '%' or '\\': percent-encoding and backslashes are refused")
        if not _NAME.fullmatch(segment):
            raise ToolError(
                f"Invalid name {segment!r} in {_shown(path)}: use up to 128 ASCII letters, digits, '.', '_' "
                "and '-', not starting with '.'"
            )
    return path


def _text(entry: MemoryEntry) -> str:
    """The file text: the exact copy in metadata while it still matches ``content``, else ``content``."""
    raw = entry.metadata.get("text")
    if isinstance(raw, str) and raw.strip() and normalize_content(raw) == entry.content:
        return raw
    return entry.content


def _size(n: int) -> str:
    """Bytes as the SDK's local backend shows them: 0B, 512B, 1.5K, 2M."""
    i = min(max(n.bit_length() - 1, 0) // 10, 3)
    value = n / 1024**i
    return f"{int(value) if value == int(value) else f'{value:.1f}'}{'BKMG'[i]}"


def _inside(files: Mapping[str, MemoryEntry], folder: str) -> list[str]:
    return [p for p in files if folder == ROOT or p.startswith(folder + "/")]


def _string(command: object, name: str) -> str:
    value = getattr(command, name, None)
    if not isinstance(value, str):
        raise ToolError(f"`{name}` must be a string, got {type(value).__name__}")
    return value


def _reserved(path: str) -> bool:
    return path == NOTES or path.startswith(NOTES + "/")


def _tool_files(files: Mapping[str, MemoryEntry]) -> int:
    return sum(1 for p in files if not _reserved(p))


class StoreMemoryTool(BetaAbstractMemoryTool):
    """The memory tool over one ``Memory`` for one user of one tenant; it never touches another scope."""

    def __init__(
        self,
        memory: Memory,
        user_id: str,
        *,
        tenant_id: str = DEFAULT_TENANT,
        max_files: int = 200,
        max_file_chars: int | None = None,
        cache_control: Any = None,
    ) -> None:
        """``max_files`` caps the tool's files per user (notes do not count); ``max_file_chars`` caps one
        file's text and defaults to ``MEMORY_MAX_CONTENT_CHARS``, which it may not exceed."""
        super().__init__(cache_control=cache_control)
        limit = memory.settings.max_content_chars
        max_file_chars = limit if max_file_chars is None else max_file_chars
        for name, value in (("max_files", max_files), ("max_file_chars", max_file_chars)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a whole number >= 1, got {value!r}")
        if max_file_chars > limit:
            raise InvalidInputError(
                f"max_file_chars={max_file_chars} exceeds MEMORY_MAX_CONTENT_CHARS={limit}; raise that setting "
                "or lower max_file_chars"
            )
        self.memory = memory
        self.scope = Scope(user_id, tenant_id)
        self.max_files = max_files
        self.max_file_chars = max_file_chars

    # -- dispatch ------------------------------------------------------------------------------------
    def call(self, input: object) -> Any:
        if not isinstance(input, Mapping):
            raise ToolError(f"The memory tool takes a JSON object with a `command`, got {type(input).__name__}")
        return super().call(input)

    def execute(self, command: sdk.BetaMemoryTool20250818Command) -> Any:
        name = getattr(command, "command", None)
        if name not in COMMANDS:
            raise ToolError(f"Unknown command {name!r}; use one of: {', '.join(sorted(COMMANDS))}")
        return super().execute(command)

    # -- the store as a tree -------------------------------------------------------------------------
    def files(self) -> dict[str, MemoryEntry]:
        """Every active entry of the scope by path: tool files first (newest wins a path), then every note."""
        files = self._tool_files()
        taken = {entry.id for entry in files.values()}
        for entry in self._pages(None):
            if entry.id not in taken:
                files[self._note_path(entry)] = entry
        return files

    def _pages(self, filters: MemoryFilter | None):
        offset = 0
        while True:
            page = self.memory.store.list(self.scope, filters, limit=_PAGE, offset=offset)
            yield from page
            if len(page) < _PAGE:
                return
            offset += _PAGE

    @staticmethod
    def _note_path(entry: MemoryEntry) -> str:
        name = entry.id if _NAME.fullmatch(entry.id) else content_hash(entry.id)[:32]
        return f"{NOTES}/{name}.txt"

    def _tool_files(self) -> dict[str, MemoryEntry]:
        """The tool's own files by path (newest wins a path), read through the store's tag filter."""
        files: dict[str, MemoryEntry] = {}
        for entry in self._pages(MemoryFilter(tags=(TOOL_TAG,))):
            path = entry.metadata.get("path")
            if self._valid_file_path(path) and path not in files:
                files[path] = entry
        return files

    def _files(self, *paths: str) -> dict[str, MemoryEntry]:
        """What a command needs, without reading every memory of a large user: the tool's files, plus the
        note a path names, or the newest ``NOTES_SHOWN`` notes when a path is /memories or its notes folder."""
        files = self._tool_files()
        taken = {entry.id for entry in files.values()}
        for path in paths:
            if path in (ROOT, NOTES):
                newest = self.memory.store.list(self.scope, limit=NOTES_SHOWN + len(taken))
                for entry in [entry for entry in newest if entry.id not in taken][:NOTES_SHOWN]:
                    files.setdefault(self._note_path(entry), entry)
            elif _reserved(path) and path.endswith(".txt"):
                entry = self.memory.store.get(self.scope, path[len(NOTES) + 1 : -len(".txt")])
                if entry is not None and entry.id not in taken and entry.status.value == "active":
                    files[self._note_path(entry)] = entry
        return files

    def _notes_line(self, files: Mapping[str, MemoryEntry]) -> str | None:
        """Says how many notes a directory view left out, if any."""
        total = self.memory.store.count(self.scope) - _tool_files(files)
        shown = len(files) - _tool_files(files)
        if total <= shown:
            return None
        return f"({shown} of {total} notes shown, newest first; view or search a note by its path or id)"

    @staticmethod
    def _valid_file_path(path: object) -> bool:
        try:
            return check_path(path) == path and path != ROOT and not _reserved(path)  # type: ignore[arg-type]
        except ToolError:
            return False

    def _file(self, path: str, files: Mapping[str, MemoryEntry]) -> MemoryEntry:
        if path in files:
            return files[path]
        if _inside(files, path) or path == ROOT:
            raise ToolError(f"The path {path} is not a file.")
        raise ToolError(f"The path {path} does not exist. Please provide a valid path.")

    def _check_new_file(self, path: str, files: Mapping[str, MemoryEntry]) -> None:
        if _reserved(path):
            raise ToolError(f"{NOTES} is reserved for memories stored by other means; choose another folder")
        if path == ROOT or _inside(files, path):
            raise ToolError(f"The path {path} is a directory; give a file path such as {path}/preferences.md")
        parts = path.split("/")
        for end in range(3, len(parts)):
            parent = "/".join(parts[:end])
            if parent in files:
                raise ToolError(f"{parent} is a file, so {path} cannot be created inside it")

    def _checked_text(self, text: str, path: str) -> str:
        if len(text) > self.max_file_chars:
            raise ToolError(
                f"The text for {path} is {len(text)} characters; the limit is {self.max_file_chars} per memory "
                "file. Split it into several smaller files."
            )
        if not text.strip():
            raise ToolError(f"The text for {path} is empty; a memory file must contain some text")
        return text

    def _duplicate(self, text: str, path: str, files: Mapping[str, MemoryEntry]) -> ToolError:
        holder = self.memory.store.get_by_hash(self.scope, content_hash(normalize_content(text)))
        where = next((p for p, e in files.items() if holder is not None and e.id == holder.id), None)
        if where is None and holder is not None:
            where = self._note_path(holder)
        return ToolError(
            f"No change was made: {where or 'another memory of this user'} already holds this exact text, and "
            f"each text is stored once. Edit {where or 'that memory'} instead, or change the text for {path}."
        )

    def _update(self, path: str, entry: MemoryEntry, files: Mapping[str, MemoryEntry], **changes: Any) -> None:
        """``Memory.update`` in this scope, its errors said in the tool's words."""
        try:
            self.memory.update(self.scope.user_id, entry.id, tenant_id=self.scope.tenant_id, **changes)
        except DuplicateContentError:
            raise self._duplicate(changes["content"], path, files) from None
        except MemoryNotFoundError:
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.") from None

    def _write(self, path: str, entry: MemoryEntry, text: str, files: Mapping[str, MemoryEntry]) -> None:
        text = self._checked_text(text, path)
        self._update(path, entry, files, content=text, metadata={**entry.metadata, "text": text})

    # -- commands ------------------------------------------------------------------------------------
    def view(self, command: sdk.BetaMemoryTool20250818ViewCommand) -> str:
        path = check_path(getattr(command, "path", None))
        files = self._files(path)
        if path in files:
            lines = _text(files[path]).split("\n")
            start_num, view_range = 1, getattr(command, "view_range", None)
            if view_range:
                pair = isinstance(view_range, list | tuple) and len(view_range) == 2
                if not pair or not all(isinstance(n, int) and not isinstance(n, bool) for n in view_range):
                    raise ToolError("`view_range` must be two line numbers [start, end]; end -1 means the last line")
                start = max(1, view_range[0]) - 1
                lines = lines[start : None if view_range[1] == -1 else view_range[1]]
                start_num = start + 1
            numbered = [f"{str(i + start_num).rjust(LINE_NUMBER_WIDTH)}\t{line}" for i, line in enumerate(lines)]
            return f"Here's the content of {path} with line numbers:\n" + "\n".join(numbered)
        inside = _inside(files, path)
        if path != ROOT and not inside:
            raise ToolError(f"The path {path} does not exist. Please provide a valid path.")
        sizes: dict[str, int] = {}
        file_sizes = {file: len(_text(files[file]).encode("utf-8")) for file in inside}
        for file, size in file_sizes.items():
            parts = file[len(path) + 1 :].split("/")
            for depth in range(1, min(len(parts), 2) + 1):
                key = "/".join(parts[:depth]) + ("/" if depth < len(parts) else "")
                sizes[key] = sizes.get(key, 0) + size
        header = f"Here're the files and directories up to 2 levels deep in {path}, excluding hidden items:"
        rows = [f"{_size(sum(file_sizes.values()))}\t{path}"]
        rows += [f"{_size(sizes[key])}\t{path}/{key}" for key in sorted(sizes, key=lambda k: k.rstrip("/").split("/"))]
        note = self._notes_line(files) if path in (ROOT, NOTES) else None
        return f"{header}\n" + "\n".join(rows + ([note] if note else []))

    def create(self, command: sdk.BetaMemoryTool20250818CreateCommand) -> str:
        raw_path = getattr(command, "path", None)
        path = check_path(raw_path)
        if isinstance(raw_path, str) and raw_path.endswith("/"):
            raise ToolError(f"The path {path} is a directory; give a file path such as {path}/preferences.md")
        text = self._checked_text(_string(command, "file_text"), path)
        files = self._files(path)
        if path in files:
            raise ToolError(f"File {path} already exists")
        self._check_new_file(path, files)
        if _tool_files(files) >= self.max_files:
            raise ToolError(
                f"Cannot create {path}: this user already has {self.max_files} memory files, the limit. "
                "Merge related files or delete ones that are no longer needed."
            )
        content = normalize_content(text)
        entry = MemoryEntry(
            user_id=self.scope.user_id,
            tenant_id=self.scope.tenant_id,
            content=content,
            tags=(TOOL_TAG,),
            metadata={"path": path, "text": text},
            embedding=self.memory.embedder.embed([content])[0],
            embedding_model=self.memory.embedder.model_name,
        )
        try:
            self.memory.store.add(entry)
        except DuplicateContentError:
            raise self._duplicate(text, path, files) from None
        return f"File created successfully at: {path}"

    def str_replace(self, command: sdk.BetaMemoryTool20250818StrReplaceCommand) -> str:
        path = check_path(getattr(command, "path", None))
        old, new = _string(command, "old_str"), _string(command, "new_str")
        files = self._files(path)
        entry = self._file(path, files)
        content = _text(entry)
        count = content.count(old)
        if count == 0:
            raise ToolError(f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}.")
        if count > 1:
            starts = [m.start() for m in re.finditer(f"(?={re.escape(old)})", content)]
            lines = ", ".join(str(content[:pos].count("\n") + 1) for pos in starts)
            raise ToolError(
                f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines: {lines}. "
                "Please ensure it is unique"
            )
        changed = content[: content.find(old)].count("\n")
        new_content = content.replace(old, new)
        self._write(path, entry, new_content, files)
        new_lines = new_content.split("\n")
        snippet = [
            f"{str(n).rjust(LINE_NUMBER_WIDTH)}\t{new_lines[n - 1]}"
            for n in range(max(0, changed - 2) + 1, min(len(new_lines), changed + 3) + 1)
        ]
        return "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n" + (
            "\n".join(snippet)
        )

    def insert(self, command: sdk.BetaMemoryTool20250818InsertCommand) -> str:
        path = check_path(getattr(command, "path", None))
        text = _string(command, "insert_text")
        at = getattr(command, "insert_line", None)
        if isinstance(at, bool) or not isinstance(at, int):
            raise ToolError(f"`insert_line` must be a whole number, got {type(at).__name__}")
        files = self._files(path)
        entry = self._file(path, files)
        lines = _text(entry).split("\n")
        if lines[-1] == "":
            lines.pop()
        if at < 0 or at > len(lines):
            raise ToolError(f"Invalid `insert_line` parameter: {at}. It should be within the range [0, {len(lines)}].")
        lines.insert(at, text.rstrip("\n"))
        self._write(path, entry, "\n".join(lines) + "\n", files)
        return f"The file {path} has been edited."

    def delete(self, command: sdk.BetaMemoryTool20250818DeleteCommand) -> str:
        path = check_path(getattr(command, "path", None))
        if path == ROOT:
            raise ToolError("Cannot delete the /memories directory itself")
        if path == NOTES:
            raise ToolError(f"Cannot delete {NOTES} as a whole (it would forget every memory); delete notes one by one")
        files = self._files(path)
        targets = [path] if path in files else _inside(files, path)
        if not targets:
            raise ToolError(f"The path {path} does not exist")
        for target in targets:
            with contextlib.suppress(MemoryNotFoundError):  # deleted concurrently: the goal is reached
                self.memory.delete(self.scope.user_id, files[target].id, tenant_id=self.scope.tenant_id)
        return f"Successfully deleted {path}"

    def rename(self, command: sdk.BetaMemoryTool20250818RenameCommand) -> str:
        old = check_path(getattr(command, "old_path", None), "old_path")
        new = check_path(getattr(command, "new_path", None), "new_path")
        if old == ROOT:
            raise ToolError("Cannot rename the /memories directory itself")
        if old == NOTES:
            raise ToolError(f"Cannot rename {NOTES}: it holds memories stored by other means; move notes one by one")
        if new.startswith(old + "/"):
            raise ToolError(f"Cannot move {old} into itself")
        files = self._files(old, new)
        if new in files or new == ROOT or _inside(files, new):
            raise ToolError(f"The destination {new} already exists")
        moves = {old: new} if old in files else {p: new + p[len(old) :] for p in _inside(files, old)}
        if not moves:
            raise ToolError(f"The path {old} does not exist")
        for target in moves.values():
            self._check_new_file(check_path(target, "new_path"), files)
        adopted = sum(1 for source in moves if _reserved(source))
        if adopted and _tool_files(files) + adopted > self.max_files:
            raise ToolError(f"Cannot move {old} out of {NOTES}: this user already has {self.max_files} memory files")
        for source, target in moves.items():
            entry = files[source]
            metadata = {**entry.metadata, "path": target, "text": _text(entry)}
            self._update(source, entry, files, tags=(*entry.tags, TOOL_TAG), metadata=metadata)
        return f"Successfully renamed {old} to {new}"

    def clear_all_memory(self) -> str:
        """Delete every file the tool wrote; memories stored by other means (the notes) stay."""
        for path, entry in self.files().items():
            if not _reserved(path):
                self.memory.delete(self.scope.user_id, entry.id, tenant_id=self.scope.tenant_id)
        return "All memory cleared"
