"""The `agent-memory` command line, run in-process with click's runner against a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memory.cli import age, main, parse_ttl
from memory.stores.postgres import SCHEMA_REVISION


@pytest.fixture
def run(tmp_path: Path, embedder):  # the embedder fixture loads the shared model once
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, ["--store", url, *args], input=input, catch_exceptions=False)

    return invoke


def test_remember_then_recall_prints_the_memory_and_why(run) -> None:
    assert run("remember", "--user", "u1", "I prefer metric units", "--type", "preference").exit_code == 0
    run("remember", "--user", "u1", "My sister Ana lives in Lisbon")
    result = run("recall", "--user", "u1", "which units should I use?")
    assert result.exit_code == 0
    first_row = result.output.splitlines()[2]
    assert "I prefer metric units" in first_row
    assert "meaning #1" in first_row and "preference" in first_row


def test_remember_reports_merge_and_supersede(run) -> None:
    added = run("remember", "--user", "u1", "The meeting is on Monday", "--json")
    first = json.loads(added.output)
    assert first["action"] == "added"
    merged = run("remember", "--user", "u1", "the meeting is on monday.")
    assert merged.output.startswith(f"merged into {first['memory']['id']}")
    superseded = json.loads(run("remember", "--user", "u1", "The meeting is on Tuesday", "--json").output)
    assert superseded["action"] == "superseded" and superseded["previous_id"] == first["memory"]["id"]
    listed = json.loads(run("list", "--user", "u1", "--all", "--json").output)
    assert {(m["content"], m["status"]) for m in listed} == {
        ("The meeting is on Monday", "superseded"),
        ("The meeting is on Tuesday", "active"),
    }


def test_list_history_and_forget(run) -> None:
    memory_id = json.loads(run("remember", "--user", "u1", "I like jazz", "--tag", "music", "--json").output)["memory"][
        "id"
    ]
    run("remember", "--user", "u2", "I like jazz")
    table = run("list", "--user", "u1").output
    assert memory_id in table and "music" in table
    assert "added" in run("history", "--user", "u1", "--id", memory_id).output
    assert run("forget", "--user", "u1", "--id", memory_id).output.strip() == "forgot 1 memory"
    assert json.loads(run("list", "--user", "u1", "--json").output) == []
    assert len(json.loads(run("list", "--user", "u2", "--json").output)) == 1


def test_forget_all_asks_first_and_only_touches_that_user(run) -> None:
    run("remember", "--user", "u1", "I like jazz")
    run("remember", "--user", "u2", "I like jazz")
    refused = run("forget", "--user", "u1", "--all", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert run("forget", "--user", "u1", "--all", input="y\n").output.strip().endswith("forgot 1 memory")
    assert json.loads(run("list", "--user", "u1", "--json").output) == []
    assert len(json.loads(run("list", "--user", "u2", "--json").output)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remember", "--user", "u1", "x", "--importance", "1.5"], "importance must be between 0 and 1"),
        (["remember", "--user", "u1", "   "], "content must not be empty"),
        (["remember", "--user", "u1", "x", "--ttl", "soon"], "is not a duration"),
        (["recall", "--user", "u1", "x", "--top-k", "0"], "top_k must be a whole number"),
        (["forget", "--user", "u1"], "exactly one of --id ID or --all"),
        (["forget", "--user", "u1", "--id", "nope"], "no memory 'nope'"),
        (["recall", "--user", "", "x"], "user_id must be a non-empty string"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_traceback(run, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_store_url_names_the_setting(embedder) -> None:
    result = CliRunner().invoke(main, ["--store", "mongodb://x", "list", "--user", "u1"])
    assert result.exit_code == 2
    assert "MEMORY_STORE_URL" in result.output and "sqlite:///" in result.output


def test_store_url_comes_from_the_environment(tmp_path: Path, monkeypatch, embedder) -> None:
    monkeypatch.setenv("MEMORY_STORE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert CliRunner().invoke(main, ["remember", "--user", "u1", "I like tea"]).exit_code == 0
    assert (tmp_path / "env.db").is_file()


def test_tenants_are_separate(run) -> None:
    # --tenant is a group option, so it goes before the command name.
    assert run("--tenant", "acme", "remember", "--user", "u1", "I like tea").exit_code == 0
    assert json.loads(run("list", "--user", "u1", "--json").output) == []
    assert len(json.loads(run("--tenant", "acme", "list", "--user", "u1", "--json").output)) == 1


def test_demo_stores_and_recalls(embedder) -> None:
    result = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "-> merged" in result.output
    portugal = result.output.split("Who could I visit in Portugal?")[1]
    assert portugal.splitlines()[1].strip() == "1. My sister Ana lives in Lisbon."
    order = result.output.split("Any news on ORD-48213?")[1]
    assert "Order ORD-48213 arrived damaged" in order.splitlines()[1] and "keywords #1" in order


def test_parse_ttl_and_age() -> None:
    assert parse_ttl("90s") == 90 and parse_ttl("2h") == 7200 and parse_ttl("1.5d") == 129_600
    assert parse_ttl("120") == 120 and parse_ttl(None) is None
    assert age(1000.0, now=1000.0 + 3 * 86_400 + 5) == "3d ago"
    assert age(1000.0, now=1030.0) == "just now"


def test_migrate_on_postgres_and_recall_through_it(postgres, embedder) -> None:
    migrated = CliRunner().invoke(main, ["migrate", "--url", postgres.owner_url])
    assert migrated.exit_code == 0 and f"schema at revision {SCHEMA_REVISION}" in migrated.output
    postgres.truncate()
    app = ["--store", postgres.app_url]
    assert CliRunner().invoke(main, [*app, "remember", "--user", "u1", "My locker code is 4471"]).exit_code == 0
    recalled = CliRunner().invoke(main, [*app, "recall", "--user", "u1", "locker code", "--json"])
    assert json.loads(recalled.output)[0]["memory"]["content"] == "My locker code is 4471"
    postgres.truncate()


def test_migrate_refuses_a_non_postgres_url(embedder) -> None:
    result = CliRunner().invoke(main, ["migrate", "--url", "sqlite:///somewhere.db"])
    assert result.exit_code == 2 and "not a Postgres URL" in result.output
