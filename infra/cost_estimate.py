"""What a deployment of infra/ + serverless.yml costs a month, at idle and at a number of turns: the README's
"Deploy to AWS" cost table is this script's output (a test holds them equal).

    python infra/cost_estimate.py                       # the README's table: idle and 1,000,000 turns a month
    python infra/cost_estimate.py --turns 50000 --chat-seconds 6 --no-proxy

Every figure is a list price (us-east-1, on demand, no free tier, no savings plan) times an assumption, and both
are printed: change an assumption with its flag. The prices were read from the AWS and Upstash pricing pages
in December 2026 and are not fetched: check them before a budget depends on them. Claude's tokens come from
memory/usage.py's price table; the tokens the memory layer itself adds per turn are counted from its own
prompts (the extraction call's instructions and tool schema) plus the stated sizes of a turn.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory.config import Settings
from memory.extraction import EXTRACTION_INSTRUCTIONS, OPERATION_SCHEMA
from memory.prompting import estimate_tokens
from memory.usage import price_of

HOURS = 730  # a month
# USD, us-east-1 list prices.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20e-6
HTTP_API_REQUEST = 1.00e-6
SQS_REQUEST = 0.40e-6
SECRET_MONTH = 0.40
NAT_HOUR, NAT_GB = 0.045, 0.045
AURORA_ACU_HOUR, AURORA_GB_MONTH, AURORA_IO = 0.12, 0.10, 0.20e-6
PROXY_ACU_HOUR, PROXY_MIN_ACU = 0.015, 8  # RDS Proxy on Aurora Serverless v2: per ACU, at least 8
LOGS_GB = 0.50
UPSTASH_COMMAND, UPSTASH_FREE_COMMANDS = 0.20e-5, 500_000  # pay as you go: $0.20 per 100,000 commands
TOOL_USE_SYSTEM_TOKENS = 313  # what Anthropic adds for a forced tool choice (tool use docs, Claude 4 models)


@dataclass(frozen=True)
class Assumptions:
    turns: int = 1_000_000
    chat_seconds: float = 4.0  # the API function waits for Claude's reply: most of a turn's billed time
    extraction_seconds: float = 1.5  # the write-back function waits for the extraction model
    overhead_seconds: float = 0.05  # embed, search, session, store (bench/turn_overhead.py: about 30 ms)
    memory_gb: float = 1769 / 1024  # serverless.yml memorySize (one full vCPU)
    min_acu: float = 0.5  # infra/database.yml MinCapacity: 0 pauses when idle (needs ProxyEnabled=false)
    busy_acu: float = 1.0  # average Aurora capacity over a month with this many turns
    proxy: bool = True
    nat_gateways: int = 1
    io_per_turn: int = 40  # Aurora I/O requests: reads that miss the buffer cache, and the writes
    gb_per_million_memories: float = 5.0  # row, vector, halfvec copy, full text, indexes, history
    memories_per_turn: float = 1.0
    kb_through_nat_per_turn: float = 16.0  # Claude and extraction requests and replies, Upstash, SQS, secrets
    log_kb_per_turn: float = 1.5  # the usage lines and Lambda's own
    upstash_commands_per_turn: int = 6  # session read and two appends (pipelined commands count one each)
    users: int = 1_000  # users whose memories the nightly consolidation works on
    message_tokens: int = 60  # the user's message
    reply_tokens: int = 250  # Claude's reply, which the extraction call also reads
    injected_tokens: int = 131  # the memory block (bench/consolidation.py: 131 a turn before consolidation)
    existing_tokens: int = 100  # similar memories shown to the extraction model
    extraction_output_tokens: int = 80
    consolidation_tokens: tuple[int, int] = (5_157, 1_064)  # in / out per user and run (bench/consolidation.py)


@dataclass(frozen=True)
class Line:
    component: str
    idle: float
    busy: float
    basis: str


def extraction_input_tokens(a: Assumptions) -> int:
    """The extraction call's input: its instructions, the tool's schema and the forced-tool preamble, then the
    turn (the message, the reply) and the similar memories, with their markup."""
    fixed = estimate_tokens(EXTRACTION_INSTRUCTIONS) + estimate_tokens(json.dumps(OPERATION_SCHEMA))
    return fixed + TOOL_USE_SYSTEM_TOKENS + a.message_tokens + a.reply_tokens + a.existing_tokens + 30


def lines(a: Assumptions, settings: Settings) -> list[Line]:
    t, gb = a.turns, a.memory_gb
    api_seconds = a.chat_seconds + a.overhead_seconds
    writeback_seconds = a.extraction_seconds + a.overhead_seconds
    consolidation_idle = HOURS * 1.0 * gb * LAMBDA_GB_SECOND  # an hourly run that finds nothing: about 1 s
    consolidation_busy = a.users * 30 * 10.0 * gb * LAMBDA_GB_SECOND  # each user once a day, about 10 s each
    chat, extraction = price_of(settings.chat_model), price_of(settings.extraction_model)
    if chat is None or extraction is None:
        raise SystemExit(f"no price for {settings.chat_model} or {settings.extraction_model} in memory/usage.py")
    rows = [
        Line(
            "Lambda: API (waits for Claude)",
            0.0,
            t * (api_seconds * gb * LAMBDA_GB_SECOND + LAMBDA_REQUEST),
            f"{api_seconds:g} s x {gb:.2f} GB a turn",
        ),
        Line(
            "Lambda: write-back",
            0.0,
            t * (writeback_seconds * gb * LAMBDA_GB_SECOND + LAMBDA_REQUEST / 5),
            f"{writeback_seconds:g} s a turn, batches of 5",
        ),
        Line(
            "Lambda: consolidation (hourly)",
            consolidation_idle,
            consolidation_idle + consolidation_busy,
            f"{a.users:,} users once a day, 10 s each",
        ),
        Line("API Gateway HTTP API", 0.0, t * HTTP_API_REQUEST, "one request a turn"),
        Line("SQS", 0.0, t * 3 * SQS_REQUEST, "send, receive, delete"),
        Line("Secrets Manager", 4 * SECRET_MONTH, 4 * SECRET_MONTH, "4 secrets"),
        Line(
            f"NAT gateway x{a.nat_gateways}",
            a.nat_gateways * NAT_HOUR * HOURS,
            a.nat_gateways * NAT_HOUR * HOURS + t * a.kb_through_nat_per_turn / 1e6 * NAT_GB,
            f"{a.kb_through_nat_per_turn:g} KB a turn",
        ),
        Line(
            "Aurora Serverless v2",
            a.min_acu * AURORA_ACU_HOUR * HOURS,
            max(a.min_acu, a.busy_acu) * AURORA_ACU_HOUR * HOURS
            + t * a.io_per_turn * AURORA_IO
            + t * a.memories_per_turn / 1e6 * a.gb_per_million_memories * AURORA_GB_MONTH,
            f"{a.min_acu:g} ACU idle, {a.busy_acu:g} busy, {a.io_per_turn} I/O a turn",
        ),
    ]
    if a.proxy:
        proxy = PROXY_MIN_ACU * PROXY_ACU_HOUR * HOURS
        rows.append(Line("RDS Proxy", proxy, max(proxy, a.busy_acu * PROXY_ACU_HOUR * HOURS), "minimum 8 ACU"))
    rows += [
        Line("CloudWatch Logs", 0.0, t * a.log_kb_per_turn / 1e6 * LOGS_GB, f"{a.log_kb_per_turn:g} KB a turn"),
        Line(
            "Upstash Redis",
            0.0,
            max(0, t * a.upstash_commands_per_turn - UPSTASH_FREE_COMMANDS) * UPSTASH_COMMAND,
            f"{a.upstash_commands_per_turn} commands a turn, 500k free",
        ),
    ]
    extraction_in = extraction_input_tokens(a)
    claude = [
        Line(
            f"Claude: memory block ({settings.chat_model})",
            0.0,
            t * a.injected_tokens * chat.input / 1e6,
            f"{a.injected_tokens} tokens a turn",
        ),
        Line(
            f"Claude: extraction ({settings.extraction_model})",
            0.0,
            t * (extraction_in * extraction.input + a.extraction_output_tokens * extraction.output) / 1e6,
            f"{extraction_in} in, {a.extraction_output_tokens} out a turn",
        ),
        Line(
            f"Claude: consolidation ({settings.extraction_model})",
            0.0,
            a.users
            * 30
            * (a.consolidation_tokens[0] * extraction.input + a.consolidation_tokens[1] * extraction.output)
            / 1e6,
            f"{a.users:,} users once a day",
        ),
    ]
    return rows + claude


def table(a: Assumptions, settings: Settings) -> str:
    rows = lines(a, settings)
    infrastructure = [r for r in rows if not r.component.startswith("Claude")]
    out = [f"| component | idle | {a.turns:,} turns | assumption |", "|---|---:|---:|---|"]
    out += [f"| {r.component} | ${r.idle:,.2f} | ${r.busy:,.2f} | {r.basis} |" for r in rows]
    for label, group in (("infrastructure", infrastructure), ("with the memory layer's Claude tokens", rows)):
        idle, busy = math.fsum(r.idle for r in group), math.fsum(r.busy for r in group)
        out.append(f"| **total, {label}** | **${idle:,.2f}** | **${busy:,.2f}** | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    defaults = Assumptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=defaults.turns, help="turns a month")
    parser.add_argument("--chat-seconds", type=float, default=defaults.chat_seconds, help="Claude's reply time")
    parser.add_argument("--busy-acu", type=float, default=defaults.busy_acu, help="mean Aurora ACU at that load")
    parser.add_argument("--min-acu", type=float, default=defaults.min_acu, help="MinCapacity (0: pauses when idle)")
    parser.add_argument("--users", type=int, default=defaults.users, help="users consolidated daily")
    parser.add_argument("--nat-gateways", type=int, choices=(1, 2), default=defaults.nat_gateways)
    parser.add_argument("--no-proxy", action="store_true", help="ProxyEnabled=false in infra/database.yml")
    args = parser.parse_args(argv)
    if args.min_acu == 0 and not args.no_proxy:
        parser.error("--min-acu 0 needs --no-proxy: RDS Proxy keeps the database awake")
    assumptions = Assumptions(
        turns=args.turns,
        chat_seconds=args.chat_seconds,
        busy_acu=args.busy_acu,
        min_acu=args.min_acu,
        users=args.users,
        nat_gateways=args.nat_gateways,
        proxy=not args.no_proxy,
    )
    print(table(assumptions, Settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
