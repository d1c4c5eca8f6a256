"""The rule-based extractor on explicit statements and corrections, and the parsing of Claude's answer."""

from __future__ import annotations

import pytest

from memory import Memory
from memory.errors import ExtractionError, InvalidInputError
from memory.extraction import MAX_MEMORY_CHARS, Action, Operation, RuleExtractor, cap_content, parse_operations


def extract(message: str, existing=()) -> list[tuple[str, str, str]]:
    result = RuleExtractor().extract(message, None, list(existing), turn_id="t1")
    return [(op.action.value, op.memory_type.value, op.content) for op in result.operations]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Hi, my name is Ana Sousa.", [("add", "fact", "My name is Ana Sousa")]),
        ("I'm allergic to peanuts and shellfish!", [("add", "fact", "I'm allergic to peanuts and shellfish")]),
        ("i am severely allergic to penicillin", [("add", "fact", "I am severely allergic to penicillin")]),
        ("I prefer aisle seats. Can you book one?", [("add", "preference", "I prefer aisle seats")]),
        ("I always take the 8:10 train", [("add", "preference", "I always take the 8:10 train")]),
        ("Please remember that my sister's birthday is May 3",
         [("add", "fact", "My sister's birthday is May 3")]),
        ("Remember my locker code is 4471", [("add", "fact", "My locker code is 4471")]),
        ("I live in Porto; I work at a bakery",
         [("add", "fact", "I live in Porto"), ("add", "fact", "I work at a bakery")]),
        ("What do I prefer? Which seat is best?", []),
        ("The weather is nice today.", []),
    ],
)  # fmt: skip
def test_explicit_statements_become_memories(message: str, expected: list[tuple[str, str, str]]) -> None:
    assert extract(message) == expected


def test_a_correction_updates_the_closest_memory_of_its_kind(memory: Memory) -> None:
    tea = memory.remember("u1", "I prefer tea in the morning", memory_type="preference").entry
    memory.remember("u1", "My name is Ana")
    existing = memory.search("u1", "Actually, I now prefer coffee in the morning.", top_k=8)

    result = RuleExtractor().extract("Actually, I now prefer coffee in the morning.", None, existing, turn_id="t")

    [op] = result.operations
    assert (op.action, op.target_id, op.content) == (Action.UPDATE, tea.id, "I prefer coffee in the morning")


def test_a_correction_with_nothing_similar_adds(memory: Memory) -> None:
    memory.remember("u1", "My name is Ana")
    existing = memory.search("u1", "I now prefer window seats", top_k=8)
    assert extract("I now prefer window seats", existing) == [("add", "preference", "I prefer window seats")]


def test_a_statement_without_correction_words_adds_even_next_to_a_similar_memory(memory: Memory) -> None:
    memory.remember("u1", "I prefer tea in the morning", memory_type="preference")
    existing = memory.search("u1", "I prefer tea with milk", top_k=8)
    assert extract("I prefer tea with milk", existing) == [("add", "preference", "I prefer tea with milk")]


def test_long_content_is_capped_at_a_word_boundary() -> None:
    text = "I prefer " + "very " * 100 + "long trips"
    capped = cap_content(text)
    assert len(capped) <= MAX_MEMORY_CHARS and capped.endswith("very…")


def test_parse_operations_maps_unknown_update_ids_to_adds_and_rejects_the_rest() -> None:
    ops = parse_operations(
        {"operations": [
            {"action": "update", "id": "ghost", "content": "I prefer trains", "memory_type": "preference"},
            {"action": "update", "id": "m1", "content": "I prefer planes"},
            {"action": "none"},
        ]},
        {"m1"},
    )  # fmt: skip
    assert [(op.action, op.target_id) for op in ops] == [(Action.ADD, None), (Action.UPDATE, "m1")]
    for answer, words in [
        ([], "no list of operations"),
        ({"operations": "x"}, "no list of operations"),
        ({"operations": [{"action": "add"} for _ in range(11)]}, "at most 10"),
        ({"operations": ["add"]}, "not an object"),
        ({"operations": [{"action": "merge", "content": "x"}]}, "off the schema"),
        ({"operations": [{"action": "add", "content": "x", "importance": 3}]}, "off the schema"),
        ({"operations": [{"action": "add", "content": "x", "memory_type": "secret"}]}, "off the schema"),
    ]:
        with pytest.raises(ExtractionError, match=words):
            parse_operations(answer, {"m1"})


def test_operations_validate_themselves_and_round_trip() -> None:
    op = Operation(Action.UPDATE, "I prefer planes", "preference", 0.7, "m1", "correction")
    assert Operation.from_dict(op.as_dict()) == op
    with pytest.raises(InvalidInputError, match="needs non-empty content"):
        Operation(Action.ADD, "  ")
    with pytest.raises(InvalidInputError, match="needs the id"):
        Operation(Action.DELETE)


def test_statements_joined_by_and_or_commas_are_separate_memories() -> None:
    assert extract("My name is Ana and I prefer tea, I'm allergic to nuts and shellfish") == [
        ("add", "fact", "My name is Ana"),
        ("add", "preference", "I prefer tea"),
        ("add", "fact", "I'm allergic to nuts and shellfish"),
    ]
