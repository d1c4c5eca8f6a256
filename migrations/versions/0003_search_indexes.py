"""Compact search indexes: a user's vectors and text-search vectors side by side in two covering btrees, so a
search reads them there instead of from heap rows spread across the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Why (measured with bench/pg_search_latency.py: 110,000 memories, one user with 10,000, rows interleaved):
- The one-pass search of 0001 read every heap row of the user: ~9,200 buffers of ~2 KB rows for 10,000
  memories, most rows on a page of their own, the 1,544-byte vector and the tsvector deformed out of each.
  Hybrid p50 was 13-17 ms on this 2-core machine with every page in shared_buffers, and no better with
  shared_buffers at 1GB: the time is CPU and memory traffic, not I/O. Read from the two indexes below,
  where a user's entries lie together (~2,300 buffers), the same search takes about half as long.
- ``search_embedding`` is the unit-length embedding as ``halfvec(384)`` (776 bytes against 1,544): the
  search ranks the user's rows by it in an index-only scan of ``memories_vector_search``, then computes the
  exact cosine distance on ``embedding`` for the best candidates only (memory/stores/postgres.py explains
  why the result is still the exact nearest neighbours). Left at the type's EXTERNAL storage, the heap keeps
  it in TOAST and the heap rows stay as they were; the index holds it in line.
- ``memories_keyword_search`` holds the generated ``tsv`` beside the scope, so the keyword side is an
  index-only scan too (the GIN index cannot serve the app role: ``tsvector @@ tsquery`` is not LEAKPROOF,
  so row-level security keeps it from running ahead of the policy). It also holds what ranking needs
  (importance, created_at, updated_at), so only the top_k results are read from the heap.
- A btree entry cannot exceed 2,704 bytes, and ids (up to 256 characters, so up to 1 KB each) and tsvectors
  (long content) are unbounded enough to pass that. ``in_vector_index`` and ``in_keyword_index`` say
  whether a row's entry fits, with room to spare: the byte sizes of the variable columns each index holds
  (a tsvector's size is at most its text form plus 5 bytes a lexeme plus 8), against a budget under the
  limit. Both indexes are partial on them (and on ``status = 'active'``, the only rows a search reads);
  ``memories_search_overflow`` finds the rest, which the search reads from the heap as before. With
  ordinary ids only content longer than about 1,000 characters of prose (the limit is 2,000 by default)
  stays out of the keyword index; nothing ordinary stays out of the vector index.
- Index-only scans read the heap for rows on pages not yet marked all-visible, so autovacuum is asked to
  visit the table after 2% of it changed (default 20%): a burst of new memories is soon index-only again.
- Row-level security is unchanged: the policy of 0001 covers the new columns and indexes, and every search
  statement still carries the scope.
- Adding the stored generated columns rewrites the table once, under an exclusive lock: on a large table,
  run it in a maintenance window.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Bytes of the variable-width columns each index entry holds, against a budget that leaves 800+ bytes
# (vector index: 776-byte halfvec, fixed columns and alignment) or 200+ bytes (keyword index) of the limit.
VECTOR_ENTRY_FITS = (
    "octet_length(tenant_id) + octet_length(user_id) + octet_length(id) + coalesce(octet_length(embedding_model), 0)"
    " <= 1800"
)
KEYWORD_ENTRY_FITS = (
    "octet_length(tenant_id) + octet_length(user_id) + octet_length(id)"
    " + octet_length(to_tsvector('english', content)::text) + 5 * length(to_tsvector('english', content)) + 8"
    " <= 2400"
)
AUTOVACUUM = {"autovacuum_vacuum_insert_scale_factor": "0.02", "autovacuum_vacuum_scale_factor": "0.02"}


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE memories
            ADD COLUMN search_embedding halfvec(384)
                GENERATED ALWAYS AS (l2_normalize(embedding)::halfvec(384)) STORED,
            ADD COLUMN in_vector_index boolean GENERATED ALWAYS AS ({VECTOR_ENTRY_FITS}) STORED,
            ADD COLUMN in_keyword_index boolean GENERATED ALWAYS AS ({KEYWORD_ENTRY_FITS}) STORED
        """
    )
    op.execute(
        "CREATE INDEX memories_vector_search ON memories (tenant_id, user_id, embedding_model) "
        "INCLUDE (expires_at, memory_type, id, search_embedding) "
        "WHERE status = 'active' AND in_vector_index AND search_embedding IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX memories_keyword_search ON memories (tenant_id, user_id) "
        "INCLUDE (expires_at, memory_type, id, importance, created_at, updated_at, tsv) "
        "WHERE status = 'active' AND in_keyword_index"
    )
    op.execute(
        "CREATE INDEX memories_search_overflow ON memories (tenant_id, user_id) "
        "WHERE status = 'active' AND (NOT in_vector_index OR NOT in_keyword_index)"
    )
    settings = ", ".join(f"{name} = {value}" for name, value in AUTOVACUUM.items())
    op.execute(f"ALTER TABLE memories SET ({settings})")


def downgrade() -> None:
    op.execute(f"ALTER TABLE memories RESET ({', '.join(AUTOVACUUM)})")
    op.execute("DROP INDEX memories_search_overflow, memories_keyword_search, memories_vector_search")
    op.execute(
        "ALTER TABLE memories DROP COLUMN in_keyword_index, DROP COLUMN in_vector_index, DROP COLUMN search_embedding"
    )
