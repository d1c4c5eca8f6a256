"""bench/scale.py at tiny sizes: what the fill puts in each user, that searches stay in the searching user's
scope (and that the benchmark notices when they do not), and that the report holds every size and backend asked
for, with what was skipped and why. The real embedder (ONNX) and real stores; nothing is mocked but the one
leaking search that checks the benchmark's own guard."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from memory import Scope
from memory.models import SearchHit

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.append(str(BENCH))

import scale  # noqa: E402  (bench/ is not a package: its scripts are imported by path)


@pytest.fixture(scope="module")
def pool(onnx_embedder, tmp_path_factory: pytest.TempPathFactory) -> scale.Pool:
    """300 sentences, seed 7: what the run below asks for, so it reads them from this cache."""
    return scale.embedded_pool(onnx_embedder, 300, 7, tmp_path_factory.mktemp("pool-cache"))


def contents(backend: scale.Backend, user: str) -> list[str]:
    return [e.content for e in backend.memory.store.list(Scope(user, scale.TENANT), limit=1_000)]


def test_the_pool_is_distinct_and_read_back_from_the_cache(onnx_embedder, tmp_path: Path) -> None:
    first = scale.embedded_pool(onnx_embedder, 50, 3, tmp_path)
    assert len(set(first.texts)) == len(first.hashes) == 50
    assert first.embed_s > 0 and Path(first.cache).is_file()
    again = scale.embedded_pool(onnx_embedder, 50, 3, tmp_path)
    assert again.embed_s == 0.0 and again.texts == first.texts
    np.testing.assert_array_equal(again.vectors, first.vectors)
    np.testing.assert_allclose(first.vectors[7], onnx_embedder.embed([first.texts[7]])[0], atol=1e-5)


def test_tenants_fill_gives_each_user_exactly_its_memories(onnx_embedder, pool, tmp_path: Path) -> None:
    with scale.open_backend("sqlite", tmp_path, onnx_embedder) as backend:
        fill = scale.Fill("tenants", 40)
        first = scale.fill_to(backend, fill, 80, pool, random.Random(1))
        assert first["rows"] == 80 and sorted(fill.users) == ["user-00000", "user-00001"]
        grown = scale.fill_to(backend, fill, 200, pool, random.Random(2))
        assert grown["rows"] == 120
        assert scale.active_memories(backend, fill) == {f"user-{n:05d}": 40 for n in range(5)}
        for user in fill.users:
            texts = contents(backend, user)
            assert len(set(texts)) == 40 and set(texts) <= set(pool.texts)
        with pytest.raises(ValueError, match="do not divide"):
            scale.fill_to(backend, fill, 230, pool, random.Random(3))


def test_one_user_past_the_pool_gets_noted_variants(onnx_embedder, pool, tmp_path: Path) -> None:
    with scale.open_backend("sqlite", tmp_path, onnx_embedder) as backend:
        fill = scale.Fill("single", 40)
        scale.fill_to(backend, fill, 100, pool, random.Random(1))
        scale.fill_to(backend, fill, 400, pool, random.Random(2))  # the pool holds 300 sentences
        assert scale.active_memories(backend, fill) == {scale.SINGLE_USER: 400}
        entries = backend.memory.store.list(Scope(scale.SINGLE_USER, scale.TENANT), limit=1_000)
        assert len({e.content for e in entries}) == 400
        variants = [e for e in entries if e.content.endswith("(note 1).")]
        assert len(variants) == 100
        originals = {text: vector for text, vector in zip(pool.texts, pool.vectors, strict=True)}
        for entry in variants[:10]:
            original = originals[entry.content.removesuffix(" (note 1).") + "."]
            assert 0.95 < float(entry.embedding @ original) < 0.999


def test_what_is_left_out_and_why() -> None:
    args = scale.parse_args(["--sizes", "1000", "10000", "100000", "--single-max", "10000", "--qdrant-max", "1000"])
    assert args.json.name == "scale.json" and scale.parse_args(["--quick"]).json.name == "scale_quick.json"
    run = [(k, shape, n) for k in scale.BACKENDS for shape in scale.SHAPES for n in args.sizes]
    left_out = [(k, shape, n) for k, shape, n in run if scale.skip_reason(k, shape, n, args, {})]
    assert left_out == [
        ("sqlite", "single", 100_000),
        ("postgres", "single", 100_000),
        ("qdrant", "tenants", 10_000),
        ("qdrant", "tenants", 100_000),
        ("qdrant", "single", 10_000),
        ("qdrant", "single", 100_000),
    ]
    assert "--single-max 10,000" in scale.skip_reason("sqlite", "single", 100_000, args, {})
    with pytest.raises(SystemExit):  # sizes must divide into users
        scale.parse_args(["--sizes", "1500", "--per-user", "1000"])


def test_searches_stay_in_the_searching_users_scope(onnx_embedder, pool, tmp_path: Path) -> None:
    with scale.open_backend("sqlite", tmp_path, onnx_embedder) as backend:
        fill = scale.Fill("tenants", 30)
        scale.fill_to(backend, fill, 90, pool, random.Random(1))
        other = contents(backend, "user-00001")[0]
        mine = backend.memory.search("user-00000", other, tenant_id=scale.TENANT)
        assert mine and {h.entry.user_id for h in mine} == {"user-00000"}
        assert other not in {h.entry.content for h in mine}
        theirs = backend.memory.search("user-00001", other, tenant_id=scale.TENANT)
        assert theirs[0].entry.content == other

        texts = scale.questions(6, random.Random(4))
        figures = scale.measure_search(
            backend.memory, sorted(fill.users), texts, onnx_embedder.embed(texts), random.Random(5), 60.0, 1
        )
        assert figures["given_embedding"]["n"] == figures["memory_search"]["n"] == 6
        assert figures["foreign_hits"] == 0 and figures["mean_hits"] > 0

        # The guard: a search answering with another user's memory stops the benchmark.
        search = backend.memory.search

        def leaking(user_id: str, query: str, **kwargs) -> list[SearchHit]:
            return search("user-00002", query, **kwargs)

        backend.memory.search = leaking
        with pytest.raises(AssertionError, match="another user"):
            scale.measure_search(
                backend.memory, ["user-00000"], texts, onnx_embedder.embed(texts), random.Random(5), 60.0, 1
            )


def test_a_run_reports_every_size_and_backend_asked_for(
    pool, postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres.owner_url)  # a database of its own on the tests' server
    out = tmp_path / "scale.json"
    argv = ["--backends", "sqlite", "postgres", "qdrant", "--sizes", "100", "200", "--per-user", "50"]
    argv += ["--queries", "4", "--writes", "3", "--bulk", "3", "--pool", "300", "--single-max", "200"]
    argv += ["--qdrant-max", "0", "--cache-dir", str(Path(pool.cache).parent), "--workdir", str(tmp_path)]
    report = scale.main([*argv, "--json", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["pool"] == {"sentences": 300, "embed_s": 0.0, "cache": pool.cache}
    assert out.with_suffix(".png").stat().st_size > 10_000
    results = report["results"]
    assert set(results) == {"sqlite", "postgres", "qdrant"}
    for kind in ("sqlite", "postgres"):
        assert list(results[kind]["tenants"]) == list(results[kind]["single"]) == ["100", "200"]
        for shape, sizes in results[kind].items():
            for size, figures in sizes.items():
                assert figures["users"] == (int(size) // 50 if shape == "tenants" else 1)
                assert figures["search"]["given_embedding"]["n"] == figures["search"]["memory_search"]["n"] == 4
                assert figures["search"]["foreign_hits"] == 0 and figures["search"]["mean_hits"] > 0
                assert figures["remember"]["n"] == sum(figures["remember"]["actions"].values()) == 3
                assert figures["bulk"]["n"] == 3 and figures["bulk"]["memories_per_s"] > 0
        tenants, single = results[kind]["tenants"], results[kind]["single"]
        assert tenants["100"]["active_memories"] == tenants["100"]["largest_user"] * 2 == 100
        # at 200: two new users of 50 beside the first two, with what the first size remembered (up to 3), and
        # the first size's import of 3 as a user of its own, not searched
        assert 200 <= tenants["200"]["searched_users_memories"] <= 203 and tenants["200"]["import_users"] == 1
        assert tenants["200"]["active_memories"] == tenants["200"]["searched_users_memories"] + 3
        # the one user is topped up to exactly the size, whatever the writes added before
        assert single["100"]["active_memories"] == single["100"]["largest_user"] == 100
        assert single["200"]["active_memories"] == single["200"]["largest_user"] == 200
    assert results["qdrant"] == {"tenants": {}, "single": {}}
    skipped = {(s["backend"], s["shape"], s["size"]) for s in report["skipped"]}
    expected = {("qdrant", shape, size) for shape in scale.SHAPES for size in (100, 200)}
    assert skipped == expected
    assert all("--qdrant-max" in s["reason"] for s in report["skipped"])
    assert report["versions"]["postgres"]["postgres"].startswith("18")
