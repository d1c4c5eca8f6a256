"""What the consolidation job costs and what it saves: 1,000 users x 200 memories, consolidated once.

Builds a SQLite store (or Postgres + pgvector with ``--store postgres``: an embedded PostgreSQL 18 in a
temporary folder, or a scratch database on ``DATABASE_URL``'s server, consolidated as the application role
under row-level security) holding ``--users`` users with ``--per-user`` memories each, bulk-loaded with
``add_many``. Each user has 20 topics (a dog, a job, a trip, a sister, ...: one per family of template
sentences, with its own name), so memories of a topic cluster; most are old (8 to 365 days) and
unimportant (below 0.5), a quarter are important and a tenth are recent, so neither is summarised; three per
user have expired, and three are near duplicates (one word changed, cosine >= 0.92) of another. Embeddings
are the real all-MiniLM-L6-v2 (the embedder the application chooses, ONNX where ``make onnx`` has run),
computed once per distinct text.

Claude is ``tests/messages_api.py``: the real ``anthropic`` SDK against a local server speaking the
Messages API, whose "model" answers the forced ``save_summary`` call with the numbered memories it was sent,
joined (so every fact survives verbatim, and a summary is as long as its sources: no real model would be
longer). Its token counts are the server's estimates (request bytes / 4, reply characters / 4).

Then ``Consolidator.run_user`` runs for every user, one after the other, and the benchmark reports time per
user (p50/p95/max), model calls and tokens per user, active memories per user before and after, and, for a
sample of ``--turn-sample`` users, what a turn injects before and after: ``--queries`` questions per user,
each about one of the user's facts, searched (``Memory.search``, ``top_k = MEMORY_PROMPT_MEMORIES``) and
rendered as ``Agent.prepare`` renders them (``render_memories`` within ``MEMORY_PROMPT_MEMORY_TOKENS``):
tokens and memories in the block, and the share of questions whose fact is in the block, itself or inside a
summary. Last, ``--rerun`` users are consolidated a second time, which should change nothing. Prints a table
and writes ``bench/results/consolidation.json`` (``--json PATH`` elsewhere).

    .venv/bin/python bench/consolidation.py [--users 1000] [--per-user 200] [--store sqlite|postgres]
        [--turn-sample 100] [--queries 5] [--rerun 20] [--json PATH]

A quick check: ``--users 20`` (about a minute).
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.messages_api: the fake Claude

from turn_overhead import percentiles, store_url  # store_url: SQLite, or an embedded Postgres as the app role

from memory import Memory, MemoryEntry, Scope, get_settings
from memory.claude import make_client
from memory.consolidation import SUMMARY_CALLS, Consolidator, UserReport
from memory.embeddings import embedder_for
from memory.models import MemoryType
from memory.prompting import render_memories
from memory.stores import open_store
from memory.summariser import TOOL_NAME, ClaudeSummariser
from tests.messages_api import API_KEY, MessagesAPI, Reply, tool_use_reply

DAY = 86_400.0
TOPICS = 20  # per user
TENANT = "bench"
EXPIRED, TWINS = 3, 3  # per user
RESULTS = Path(__file__).resolve().parent / "results"

# Families of template sentences: (topic, names, [(statement, question, fillers)]). A user's topic is a family
# with one of its names ({n}); its facts are statements with fillers ({x}). "|" separates choices.
# fmt: off
FAMILIES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("dog", "Rex|Bella|Milo|Luna|Biscuit|Pepper|Ziggy|Nala", [
        ("My dog {n} loves playing with {x}.", "What does my dog {n} like to play with?",
         "a red rubber ball|old tennis balls|a squeaky duck|a rope toy|sticks from the park"),
        ("My dog {n} is allergic to {x}.", "What is {n} allergic to?", "chicken|grain|beef|fish oil|wheat"),
        ("My dog {n} sees the vet at {x}.", "Which vet does {n} go to?",
         "Parkside Clinic|the animal hospital on Elm Street|Happy Paws|the practice in Riverside"),
        ("My dog {n} sleeps {x}.", "Where does my dog {n} sleep?",
         "on the sofa|in a crate by the door|at the foot of my bed|in the kitchen"),
        ("My dog {n} is scared of {x}.", "What frightens {n}?",
         "thunderstorms|fireworks|the vacuum cleaner|bicycles|the postman"),
        ("I walk my dog {n} {x}.", "Where do I walk {n}?",
         "along the canal every morning|in Victoria Park|around the lake on weekends|on the beach at sunset"),
    ]),
    ("cat", "Whiskers|Tigger|Mochi|Salem|Ginger|Oreo|Simba|Cleo", [
        ("My cat {n} likes {x}.", "What does my cat {n} like?",
         "chasing laser dots|sitting in cardboard boxes|tuna treats|the sunny windowsill|catnip mice"),
        ("My cat {n} hates {x}.", "What does {n} hate?",
         "being brushed|the carrier|loud music|the dog next door|baths"),
        ("My cat {n} is {x} years old.", "How old is my cat {n}?", "two|five|nine|twelve|fifteen"),
        ("My cat {n} takes {x}.", "What medicine does {n} take?",
         "thyroid pills every morning|a special kidney diet|flea drops monthly|joint supplements"),
        ("My cat {n} came from {x}.", "Where did my cat {n} come from?",
         "a rescue shelter|my grandmother|a farm in Wales|the street behind our flat"),
    ]),
    ("work", "Acme Corp|Globex|Initech|Northwind|Umbrella Labs|Contoso|Hooli|Vandelay Industries", [
        ("I work at {n} as {x}.", "What is my job at {n}?",
         "a data engineer|a product manager|a backend developer|a UX designer|a team lead"),
        ("My manager at {n} is {x}.", "Who is my manager at {n}?",
         "Sarah Chen|Tom Baker|Priya Patel|Lukas Meyer|Ana Souza"),
        ("At {n} my team is migrating {x}.", "What is my team at {n} migrating?",
         "the billing service to Go|our database to Postgres|the CI to GitHub Actions|the frontend to React"),
        ("I commute to the {n} office {x}.", "How do I get to the {n} office?",
         "by bike|by train|on the 42 bus|by car|on foot"),
        ("At {n} I have my weekly one-on-one {x}.", "When is my one-on-one at {n}?",
         "on Tuesday mornings|every Thursday at 3pm|on Monday afternoons|on Fridays at 10"),
        ("My next performance review at {n} is {x}.", "When is my review at {n}?",
         "in March|in June|at the end of the quarter|in September"),
    ]),
    ("food", "Bella Napoli|Sakura Sushi|The Green Fork|Spice Route|Casa Lupe|Golden Dragon|Le Petit Bistro", [
        ("At {n} I always order {x}.", "What do I order at {n}?",
         "the margherita pizza|the salmon nigiri|the lentil curry|the fish tacos|the mushroom risotto"),
        ("My favourite restaurant {n} is {x}.", "Where is {n}?",
         "near my office|on the high street|a long drive away|next to the cinema"),
        ("For breakfast I usually have {x}.", "What do I eat for breakfast?",
         "porridge with berries|two boiled eggs|toast and marmalade|a green smoothie|yoghurt with granola"),
        ("I am trying to cook more {x} dishes.", "Which cuisine am I learning to cook?",
         "Thai|Ethiopian|Korean|Mexican|Persian"),
        ("My comfort food is {x}.", "What is my comfort food?",
         "mac and cheese|chicken soup|ramen|pancakes|a cheese toastie"),
        ("I drink {x} every day.", "What do I drink every day?",
         "three cups of coffee|green tea|oat milk lattes|sparkling water"),
    ]),
    ("travel", "Lisbon|Kyoto|Reykjavik|Buenos Aires|Cape Town|Vancouver|Marrakech|Hanoi", [
        ("I am planning a trip to {n} {x}.", "When is my trip to {n}?",
         "in April|next summer|for my birthday|in October|over Christmas"),
        ("In {n} I want to visit {x}.", "What do I want to see in {n}?",
         "the old town|the food markets|the hot springs|the national museum|a football match"),
        ("For the {n} trip I booked {x}.", "What did I book for {n}?",
         "a hotel near the harbour|an apartment in the centre|a window seat|a rental car|a guided walking tour"),
        ("My budget for {n} is {x}.", "What is my budget for {n}?",
         "2000 euros|1500 dollars|about 3000 pounds|as low as possible"),
        ("I am travelling to {n} with {x}.", "Who is coming to {n} with me?",
         "my partner|my two kids|my best friend|colleagues from work|nobody, I go alone"),
        ("Before going to {n} I need to {x}.", "What must I do before {n}?",
         "renew my passport|get travel insurance|exchange money|get vaccinated|learn a few phrases"),
    ]),
    ("sister", "Emma|Olivia|Sofia|Mia|Hannah|Leah|Chloe|Zoe", [
        ("My sister {n} lives in {x}.", "Where does my sister {n} live?", "Berlin|Toronto|Manchester|Melbourne|Dublin"),
        ("My sister {n} works as {x}.", "What does my sister {n} do for a living?",
         "a nurse|a lawyer|a teacher|an architect|a chef"),
        ("My sister {n} has {x}.", "Does my sister {n} have kids or pets?",
         "two boys|a baby girl|three cats|a new house|a sailing boat"),
        ("The birthday of my sister {n} is {x}.", "When is the birthday of {n}?",
         "on 3 May|in late August|on 14 February|in November"),
        ("My sister {n} is getting married {x}.", "When is my sister {n} getting married?",
         "next June|in Italy|in the autumn|at a small registry office"),
        ("I call my sister {n} {x}.", "How often do I call {n}?",
         "every Sunday|once a month|on her lunch break|most evenings"),
    ]),
    ("father", "Robert|James|Ahmed|Kenji|Carlos|Pavel|David|Samuel", [
        ("My father {n} is recovering from {x}.", "What is my father {n} recovering from?",
         "knee surgery|a bad flu|a hip replacement|a back injury"),
        ("My father {n} loves {x}.", "What does my father {n} enjoy?",
         "fishing|old westerns|gardening|chess|jazz records"),
        ("My father {n} retired {x}.", "When did my father {n} retire?",
         "last year|in 2018|from the railway|early, at 58"),
        ("My father {n} lives {x}.", "Where does my father {n} live?",
         "in a village near York|with my brother|by the sea|in a care home|an hour away"),
        ("For my father {n} I am buying {x}.", "What am I buying for my father {n}?",
         "a new phone|a tablet|concert tickets|a warm coat|a fishing rod"),
    ]),
    ("health", "Dr Alvarez|Dr Nguyen|Dr Smith|Dr Kowalski|Dr Haddad|Dr Lindqvist", [
        ("My next appointment with {n} is {x}.", "When do I see {n}?",
         "next Tuesday|on the 12th|in two weeks|in three months"),
        ("{n} prescribed me {x}.", "What did {n} prescribe?",
         "blood pressure pills|an inhaler|vitamin D|a course of antibiotics|physiotherapy"),
        ("{n} says my {x}.", "What did {n} say about my health?",
         "asthma is mild|blood sugar is too high|blood pressure is fine|cholesterol is rising"),
        ("{n} told me to {x}.", "What did {n} tell me to do?",
         "walk 10,000 steps a day|cut down on salt|sleep more|drink more water|stop running for a month"),
    ]),
    ("sport", "running|swimming|cycling|yoga|climbing|tennis|rowing|boxing", [
        ("I do {n} {x}.", "How often do I do {n}?",
         "three times a week|every morning|on Saturdays|after work|twice a week"),
        ("My goal for {n} this year is {x}.", "What is my {n} goal?",
         "a half marathon|beating my personal best|doing it without pain|my first competition"),
        ("For {n} I use {x}.", "Where do I train for {n}?",
         "a club near my house|the gym at work|an app with training plans|a personal coach"),
        ("I got into {n} {x}.", "How did I get into {n}?",
         "during lockdown|in university|two years ago|because of my back|thanks to a friend"),
        ("My {n} injury is {x}.", "How is my {n} injury?",
         "a sore ankle|a pulled hamstring|a stiff shoulder|fully healed now"),
    ]),
    ("home", "Bristol|Austin|Lyon|Osaka|Denver|Porto|Glasgow|Utrecht", [
        ("I live in a {x} in {n}.", "What kind of home do I have in {n}?",
         "small flat|terraced house|studio|two bedroom apartment|house with a garden"),
        ("My landlord in {n} {x}.", "What about my landlord in {n}?",
         "is slow to fix things|raised the rent|is very friendly|wants to sell the place"),
        ("I am renovating {x} of my home in {n}.", "What am I renovating in {n}?",
         "the kitchen|the bathroom|the garden shed|the spare room|the floors"),
        ("My neighbours in {n} {x}.", "What are my neighbours in {n} like?",
         "have a loud dog|are a retired couple|play the drums|help with parcels|just moved in"),
        ("I moved to {n} {x}.", "When did I move to {n}?",
         "in 2016|for a job|to be near family|after university|last year"),
    ]),
    ("car", "Toyota Corolla|VW Golf|Tesla Model 3|Honda Civic|Ford Focus|Skoda Octavia|Mazda 3|Kia Niro", [
        ("My {n} needs {x}.", "What does my {n} need?",
         "new tyres|an oil change|a service in May|the brakes checked|a new battery"),
        ("I bought my {n} {x}.", "When did I buy my {n}?",
         "second hand in 2019|new last year|from my uncle|on finance"),
        ("My {n} is {x}.", "What colour is my {n}?", "blue|silver|dark red|white|black"),
        ("I use my {n} for {x}.", "What do I use my {n} for?",
         "the school run|weekend trips|commuting|moving equipment|very little now"),
    ]),
    ("music", "guitar|piano|violin|drums|cello|ukulele|saxophone|flute", [
        ("I am learning {n} {x}.", "How am I learning the {n}?",
         "with a teacher on Wednesdays|from online videos|at a community class|on my own"),
        ("On the {n} I am practising {x}.", "What am I practising on the {n}?",
         "Bach preludes|jazz standards|scales every day|songs by the Beatles|for a recital"),
        ("My {n} is {x}.", "Tell me about my {n}.",
         "a Yamaha|second hand|a gift from my aunt|in need of repair|kept in the living room"),
        ("I play {n} {x}.", "Where do I play {n}?",
         "in a small band|at church|for fun only|with my daughter|in an orchestra"),
    ]),
    ("reading", "science fiction|history|crime novels|poetry|biographies|fantasy|philosophy|graphic novels", [
        ("My favourite {n} author is {x}.", "Who is my favourite {n} author?",
         "Ursula Le Guin|Mary Beard|Agatha Christie|Seamus Heaney|Robert Caro"),
        ("Right now I am reading {n} {x}.", "How am I reading {n} at the moment?",
         "on my kindle|from the library|recommended by my brother|for my book club"),
        ("I buy {n} books {x}.", "Where do I buy {n} books?",
         "second hand|at the local shop|as audiobooks|on sale|rarely"),
        ("My book club discusses {n} {x}.", "When does my {n} book club meet?",
         "every second Thursday|online|at a pub|once a month"),
    ]),
    ("money", "Monzo|Chase|ING|Barclays|Revolut|Wells Fargo|N26|HSBC", [
        ("I bank with {n} {x}.", "Why do I bank with {n}?",
         "for my salary|for savings only|since 2015|because of the app"),
        ("With {n} I am saving for {x}.", "What am I saving for with {n}?",
         "a house deposit|a new car|my wedding|a sabbatical|retirement"),
        ("My {n} card {x}.", "What about my {n} card?",
         "was blocked last week|expires in June|has a 2000 limit|gives cashback"),
        ("From my {n} account I pay {x} by direct debit.", "What do I pay from my {n} account?",
         "my council tax|the gym|the phone bill|my student loan|the rent"),
    ]),
    ("course", "a Spanish course|an MBA|a data science bootcamp|"
     "a pottery class|an evening law degree|a photography course|a first aid course", [
        ("I am taking {n} {x}.", "Where am I taking {n}?",
         "online|at the city college|on Tuesday evenings|paid for by my employer"),
        ("My exam for {n} is {x}.", "When is my exam for {n}?", "in June|next month|on the 20th|already passed"),
        ("For {n} I need to {x}.", "What do I need to do for {n}?",
         "submit an essay|finish a project|practise every day|buy a textbook|find a study partner"),
        ("The teacher of {n} is {x}.", "What is the teacher of {n} like?",
         "very strict|called Maria|an old friend|excellent"),
    ]),
    ("garden", "tomatoes|roses|herbs|strawberries|lemon trees|orchids|succulents|chillies", [
        ("I grow {n} {x}.", "Where do I grow {n}?",
         "on my balcony|in the back garden|in a greenhouse|on the kitchen windowsill|at an allotment"),
        ("My {n} {x}.", "How are my {n} doing?",
         "have aphids|need repotting|did great this year|die every winter|need daily watering"),
        ("I feed my {n} {x}.", "What do I feed my {n}?",
         "tomato feed weekly|compost|nothing special|a liquid fertiliser"),
        ("I got my {n} {x}.", "Where did I get my {n}?",
         "from a garden centre|as seeds from my mother|online|at a plant swap"),
    ]),
    ("friend", "Jo|Sam|Alex|Ravi|Noor|Ben|Kate|Luis", [
        ("My friend {n} is {x}.", "What is happening with my friend {n}?",
         "moving to Spain|getting divorced|starting a company|expecting a baby|training for a triathlon"),
        ("I owe my friend {n} {x}.", "What do I owe {n}?", "50 pounds|a dinner|a call back|a birthday present"),
        ("My friend {n} and I {x}.", "What do {n} and I do together?",
         "go climbing on Sundays|met at university|play online games|run a podcast"),
        ("My friend {n} likes {x}.", "What does my friend {n} like?",
         "board games|craft beer|horror films|vintage clothes"),
    ]),
    ("son", "Leo|Oscar|Noah|Arlo|Finn|Theo|Kai|Omar", [
        ("My son {n} is in {x}.", "Which class is my son {n} in?",
         "year 3|nursery|secondary school|the school football team"),
        ("My son {n} is allergic to {x}.", "What is my son {n} allergic to?", "nuts|eggs|bee stings|cow milk"),
        ("My son {n} loves {x}.", "What does my son {n} love?", "dinosaurs|Lego|drawing|swimming|Minecraft"),
        ("My son {n} has {x}.", "What does my son {n} have coming up?",
         "a dentist appointment soon|a school trip in May|swimming lessons on Monday|a party to go to"),
        ("My son {n} needs {x}.", "What does my son {n} need?", "new shoes|help with maths|glasses|a bigger bike"),
    ]),
    ("laptop", "MacBook Air|ThinkPad X1|Dell XPS|Surface Laptop|Framework laptop|HP Spectre|Chromebook", [
        ("My {n} {x}.", "What is wrong with my {n}?",
         "has a cracked screen|runs Linux|belongs to work|has a dying battery|is four years old"),
        ("On my {n} I use {x}.", "What software do I use on my {n}?", "VS Code|Vim|PyCharm|Excel all day|Photoshop"),
        ("I back up my {n} {x}.", "How do I back up my {n}?",
         "to an external disk|to the cloud|every Friday|never, sadly"),
        ("For my {n} I want {x}.", "What do I want for my {n}?",
         "more memory|a new charger|a docking station|a better keyboard"),
    ]),
    ("tv", "Severance|The Bear|Succession|Dark|Fleabag|The Wire|Shogun|Slow Horses", [
        ("I am watching {n} {x}.", "How am I watching {n}?",
         "with my partner|season two now|for the second time|one episode a night"),
        ("My favourite character in {n} is {x}.", "Who is my favourite character in {n}?",
         "the quiet one|the boss|the villain|the cook"),
        ("I recommended {n} to {x}.", "Who did I recommend {n} to?", "my sister|my colleagues|my book club|my dad"),
        ("I watch {n} on {x}.", "Where do I watch {n}?",
         "Netflix|Apple TV|the big screen in the lounge|my phone on the train"),
    ]),
    ("language", "Spanish|Japanese|German|Arabic|Italian|Mandarin|French|Portuguese", [
        ("I am learning {n} {x}.", "How am I learning {n}?",
         "with an app|with a tutor on Zoom|for my partner|for work|at evening classes"),
        ("My {n} level is {x}.", "What is my {n} level?", "beginner|intermediate|B2|almost fluent"),
        ("I practise {n} by {x}.", "How do I practise {n}?",
         "watching films|reading the news|talking to my neighbour|writing a diary"),
        ("I want to take a {n} exam {x}.", "When is my {n} exam?", "in spring|next year|for a job"),
    ]),
]
# fmt: on


@dataclass
class Fact:
    text: str
    question: str
    importance: float
    created_at: float
    expires_at: float | None = None
    twin_of: str | None = None  # a near duplicate of this text


@dataclass
class User:
    user_id: str
    facts: list[Fact] = field(default_factory=list)


def make_user(user_id: str, per_user: int, rng: random.Random, now: float, vectors: Vectors, threshold: float) -> User:
    """``per_user`` memories on ``TOPICS`` topics: distinct texts, mixed importance and age, a few expired and
    near duplicates.

    As the write path leaves a store, no two of them are near duplicates (cosine >= ``threshold``: "My cat
    is five" and "My cat is twelve" would have been one superseding the other) except the planted ones."""
    families = rng.sample(FAMILIES, min(TOPICS, len(FAMILIES)))
    pools = []
    for _topic, names, templates in families:
        name = rng.choice(names.split("|"))
        pool = [
            (statement.format(n=name, x=x), question.format(n=name))
            for statement, question, fillers in templates
            for x in fillers.split("|")
        ]
        rng.shuffle(pool)
        pools.append(pool)
    vectors.embed([text for pool in pools for text, _ in pool])
    plain = per_user - TWINS if per_user > 2 * TWINS + EXPIRED else per_user
    picked: list[tuple[str, str]] = []
    kept = np.zeros((plain, vectors.dimensions), dtype=np.float32)
    while len(picked) < plain:
        before = len(picked)
        for pool in pools:
            while pool and len(picked) < plain:
                text, question = pool.pop()
                vector = vectors[text]
                if not len(picked) or float(np.max(kept[: len(picked)] @ vector)) < threshold:
                    kept[len(picked)] = vector
                    picked.append((text, question))
                    break
        if len(picked) == before:
            raise SystemExit(f"--per-user {per_user}: only {len(picked)} distinct template sentences for a user")
    user = User(user_id)
    for text, question in picked:
        low = rng.random() < 0.75
        importance = round(rng.uniform(0.1, 0.45) if low else rng.uniform(0.55, 0.95), 2)
        age = rng.uniform(0.1, 6.5) if rng.random() < 0.1 else rng.uniform(8, 365)
        user.facts.append(Fact(text, question, importance, now - age * DAY))
    if plain < per_user:
        for fact in rng.sample(user.facts[EXPIRED:], TWINS):  # the first EXPIRED facts expire below
            twin = twin_text(fact.text)
            user.facts.append(
                Fact(
                    twin,
                    fact.question,
                    fact.importance,
                    min(now - 60, fact.created_at + rng.uniform(1, 5) * DAY),
                    twin_of=fact.text,
                )
            )
        for fact in user.facts[:EXPIRED]:
            fact.created_at = now - rng.uniform(20, 60) * DAY
            fact.expires_at = now - rng.uniform(1, 15) * DAY
    vectors.embed([fact.text for fact in user.facts[plain:]])
    return user


class Vectors(dict[str, np.ndarray]):
    """Embeddings by text: each distinct text embedded once, in batches."""

    def __init__(self, embedder: Any, batch: int = 256) -> None:
        super().__init__()
        self.embedder, self.batch, self.dimensions, self.seconds = embedder, batch, embedder.dimensions, 0.0

    def embed(self, texts: list[str]) -> None:
        missing = [text for text in dict.fromkeys(texts) if text not in self]
        started = time.perf_counter()
        for start in range(0, len(missing), self.batch):
            chunk = missing[start : start + self.batch]
            self.update(zip(chunk, self.embedder.embed(chunk), strict=True))
        self.seconds += time.perf_counter() - started


def twin_text(text: str) -> str:
    """The same fact said again a little differently (one word changed): cosine >= 0.92 with the model."""
    return text[:-1] + " too." if text.endswith(".") else text + " too"


def summarise_request(body: dict[str, Any], max_chars: int, latency: float = 0.0) -> Reply:
    """The fake cheap model: the summary is every numbered memory it was sent, joined, within ``max_chars`` and
    the limit its instructions give (a profile's is shorter); answered after ``latency`` seconds."""
    stated = re.search(r"At most (\d+) characters", body["system"][0]["text"])
    max_chars = min(max_chars, int(stated.group(1))) if stated else max_chars
    listing = body["messages"][0]["content"]
    facts = [html.unescape(fact) for fact in re.findall(r"^\d+\. \[\w+\] (.+)$", listing, re.MULTILINE)]
    kept: list[str] = []
    for fact in facts:
        if len(" ".join([*kept, fact])) > max_chars:
            break
        kept.append(fact)
    return dataclasses.replace(tool_use_reply(TOOL_NAME, {"summary": " ".join(kept)}), delay=latency)


def progress(message: str) -> None:
    print(f"\r{message}\033[K", end="", file=sys.stderr, flush=True)


@dataclass
class Turn:
    tokens: int
    memories: int
    recalled: bool  # the question's fact is in the block, itself or inside a summary
    summaries: int
    profiles: int


def turns(memory: Memory, users: list[User], queries: int, rng: random.Random, vectors: dict[str, Any]) -> list[Turn]:
    settings = memory.settings
    measured = []
    for user in users:
        for fact in user_questions(user, queries, rng):
            hits = memory.search(
                user.user_id,
                fact.question,
                top_k=settings.prompt_memories,
                tenant_id=TENANT,
                embedding=vectors[fact.question],
            )
            block = render_memories(hits, max_memories=len(hits), max_tokens=settings.prompt_memory_tokens)
            contents = [hit.entry.content for hit in block.used]
            measured.append(
                Turn(
                    tokens=block.tokens,
                    memories=len(block.used),
                    recalled=any(fact.text.rstrip(".") in content for content in contents),
                    summaries=sum(hit.entry.memory_type is MemoryType.SUMMARY for hit in block.used),
                    profiles=sum("profile" in hit.entry.tags for hit in block.used),
                )
            )
    return measured


def user_questions(user: User, queries: int, rng: random.Random) -> list[Fact]:
    """``queries`` facts of the user that are still true (not expired) and not a planted near duplicate."""
    candidates = [f for f in user.facts if f.expires_at is None and f.twin_of is None]
    return random.Random(f"{user.user_id}-{rng.random()}").sample(candidates, min(queries, len(candidates)))


def turn_summary(measured: list[Turn]) -> dict[str, float]:
    return {
        "turns": len(measured),
        "tokens_mean": round(statistics.fmean(t.tokens for t in measured), 1),
        "tokens_p95": sorted(t.tokens for t in measured)[int(0.95 * (len(measured) - 1))],
        "memories_mean": round(statistics.fmean(t.memories for t in measured), 2),
        "summaries_mean": round(statistics.fmean(t.summaries for t in measured), 2),
        "profiles_mean": round(statistics.fmean(t.profiles for t in measured), 2),
        "fact_recalled": round(statistics.fmean(t.recalled for t in measured), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--turn-sample", type=int, default=100, help="users whose turns are measured")
    parser.add_argument("--queries", type=int, default=5, help="questions per sampled user")
    parser.add_argument("--rerun", type=int, default=20, help="users consolidated a second time (should be a no-op)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--model-latency",
        type=float,
        default=0.0,
        help="seconds the fake model takes per answer (default 0: the local server answers in milliseconds)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "consolidation.json", help="where results go")
    args = parser.parse_args()
    begun = time.perf_counter()
    load_before = os.getloadavg()
    rng = random.Random(args.seed)
    now = time.time()

    embedder = embedder_for(get_settings(cache_url="none"))
    started = time.perf_counter()
    embedder.embed(["warm up"])
    model_load_s = time.perf_counter() - started
    vectors = Vectors(embedder)
    threshold = get_settings().dedup_threshold
    started = time.perf_counter()
    users = []
    for n in range(args.users):
        users.append(make_user(f"user-{n:05d}", args.per_user, rng, now, vectors, threshold))
        progress(f"generating {n + 1:,}/{args.users:,} users ({len(vectors):,} distinct texts embedded)")
    sample = users[:: max(1, args.users // max(1, args.turn_sample))][: args.turn_sample]
    vectors.embed([fact.question for user in sample for fact in user.facts])
    generate_s = time.perf_counter() - started

    with (
        tempfile.TemporaryDirectory() as folder,
        store_url(args.store, Path(folder)) as (url, owner_url),
        MessagesAPI() as api,
    ):
        settings = get_settings(
            store_url=url,
            cache_url="none",
            anthropic_api_key=API_KEY,
            anthropic_base_url=api.url,
            claude_max_retries=0,
        )
        api.default = lambda body: summarise_request(body, settings.max_content_chars, args.model_latency)
        started = time.perf_counter()
        loader = open_store(owner_url or url)
        entries = []
        for user in users:
            for fact in user.facts:
                entries.append(
                    MemoryEntry(
                        user_id=user.user_id,
                        tenant_id=TENANT,
                        content=fact.text,
                        importance=fact.importance,
                        created_at=fact.created_at,
                        expires_at=fact.expires_at,
                        embedding=vectors[fact.text],
                        embedding_model=embedder.model_name,
                    )
                )
            if len(entries) >= 2000 or user is users[-1]:
                loader.add_many(entries)
                entries = []
                progress(f"loading {int(user.user_id.split('-')[1]) + 1:,}/{args.users:,} users")
        loader.close()
        if owner_url:
            import psycopg

            with psycopg.connect(owner_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE memories")
        load_s = time.perf_counter() - started

        memory = Memory(open_store(url), embedder, settings)
        summariser = ClaudeSummariser(
            make_client(settings), settings.extraction_model, max_chars=settings.max_content_chars
        )
        consolidator = Consolidator(memory, summariser, settings)

        progress("turns before consolidation")
        before = turns(memory, sample, args.queries, random.Random(args.seed), vectors)

        reports: list[UserReport] = []
        seconds: list[float] = []
        started = time.perf_counter()
        for n, user in enumerate(users, 1):
            t0 = time.perf_counter()
            reports.append(consolidator.run_user(Scope(user.user_id, TENANT)))
            seconds.append(time.perf_counter() - t0)
            if n % 10 == 0 or n == len(users):
                elapsed = time.perf_counter() - started
                progress(
                    f"consolidating {n:,}/{len(users):,} users, {elapsed:.0f} s, {len(api.requests):,} model calls"
                )
        consolidate_s = time.perf_counter() - started
        api_calls = len(api.requests)

        progress("turns after consolidation")
        after = turns(memory, sample, args.queries, random.Random(args.seed), vectors)

        active = {u.user_id: memory.store.list(Scope(u.user_id, TENANT), limit=10_000) for u in sample}
        summaries = [e for entries in active.values() for e in entries if e.memory_type is MemoryType.SUMMARY]
        kept = [
            any(fact.text.rstrip(".") in e.content for e in active[u.user_id])
            for u in sample
            for fact in u.facts
            if fact.expires_at is None
        ]
        rerun = [consolidator.run_user(Scope(u.user_id, TENANT)) for u in users[: args.rerun]]
        memory.close()
        progress("")
        print(file=sys.stderr)

    total_s = time.perf_counter() - begun
    result = summarise(reports, seconds, consolidate_s, api_calls, before, after, summaries, rerun)
    result["facts_still_held"] = round(statistics.fmean(kept), 4)
    result["setup"] = {
        "store": args.store,
        "users": args.users,
        "per_user": args.per_user,
        "turn_sample": len(sample),
        "queries": args.queries,
        "model_latency_s": args.model_latency,
        "embedder": f"{type(embedder).__name__} ({embedder.model_name})",
        "generate_s": round(generate_s, 1),
        "model_load_s": round(model_load_s, 1),
        "distinct_texts": len(vectors),
        "embed_s": round(vectors.seconds, 1),
        "load_s": round(load_s, 1),
        "total_s": round(total_s, 1),
        "settings": {
            name: getattr(settings, name)
            for name in (
                "consolidation_min_age_days",
                "consolidation_max_importance",
                "consolidation_cluster_similarity",
                "consolidation_min_cluster",
                "consolidation_max_cluster",
                "consolidation_max_memories",
                "dedup_threshold",
                "prompt_memories",
                "prompt_memory_tokens",
            )
        },
    }
    result["machine"] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_before": round(load_before[0], 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


def summarise(reports, seconds, consolidate_s, api_calls, before, after, summaries, rerun) -> dict[str, Any]:
    per_ms = [s * 1000 for s in seconds]
    active_before = statistics.fmean(r.active_before for r in reports)
    active_after = statistics.fmean(r.active_after for r in reports)
    errors = Counter(re.sub(r"\d+", "N", e) for r in reports for e in r.errors)
    lengths = sorted(len(e.content) for e in summaries if "consolidated_from" in e.metadata)
    profiles = sorted(len(e.content) for e in summaries if "profile" in e.tags)
    fmean = statistics.fmean
    return {
        "time_per_user": percentiles(per_ms, digits=1) | {"mean_ms": round(fmean(per_ms), 1)},
        "consolidate_s": round(consolidate_s, 1),
        "users_per_minute": round(len(reports) / consolidate_s * 60, 1),
        "model_calls_per_user": {
            "mean": round(fmean(r.model_calls for r in reports), 2),
            "max": max(r.model_calls for r in reports),
            "total_reported": sum(r.model_calls for r in reports),
            "total_seen_by_api": api_calls,
        },
        "tokens_per_user": {
            "input_mean": round(fmean(r.input_tokens for r in reports)),
            "output_mean": round(fmean(r.output_tokens for r in reports)),
        },
        "per_user_mean": {
            name: round(fmean(getattr(r, name) for r in reports), 2)
            for name in ("expired", "merged", "summaries", "summarised", "pruned", "purged")
        },
        "profiles": dict(Counter(r.profile for r in reports)),
        "active_per_user": {
            "before": round(active_before, 1),
            "after": round(active_after, 1),
            "drop_pct": round(100 * (1 - active_after / active_before), 1),
        },
        "turns": {"before": turn_summary(before), "after": turn_summary(after)},
        "summary_chars": {
            "n": len(lengths),
            "median": statistics.median(lengths) if lengths else 0,
            "max": lengths[-1] if lengths else 0,
        },
        "profile_chars": {"median": statistics.median(profiles) if profiles else 0, "max": max(profiles, default=0)},
        "errors": {"users_with_errors": sum(bool(r.errors) for r in reports), "kinds": dict(errors.most_common(5))},
        "skipped": sum(r.skipped is not None for r in reports),
        "rerun": {
            "users": len(rerun),
            "changed": sum(r.changed for r in rerun),
            "model_calls": sum(r.model_calls for r in rerun),
        },
    }


def report(result: dict[str, Any]) -> None:
    setup, machine, turn = result["setup"], result["machine"], result["turns"]
    per, calls, tokens = result["time_per_user"], result["model_calls_per_user"], result["tokens_per_user"]
    active, mean = result["active_per_user"], result["per_user_mean"]
    print(
        f"\n{setup['store']}: {setup['users']:,} users x {setup['per_user']} memories; {setup['embedder']}; "
        f"{machine['machine']}, Python {machine['python']}; load average {machine['load_before']:.1f} before, "
        f"{machine['load_after']:.1f} after"
    )
    print(
        f"model load {setup['model_load_s']:.1f} s; generate and embed {setup['generate_s']:.0f} s "
        f"({setup['distinct_texts']:,} distinct texts, {setup['embed_s']:.0f} s of it embedding); bulk load "
        f"{setup['load_s']:.0f} s; consolidation {result['consolidate_s']:.0f} s; total {setup['total_s']:.0f} s\n"
    )
    rows = [
        ("time per user p50 / p95 / max", f"{per['p50_ms']:.0f} / {per['p95_ms']:.0f} / {per['max_ms']:.0f} ms"),
        ("users per minute (one process)", f"{result['users_per_minute']:.0f}"),
        ("model calls per user mean / max", f"{calls['mean']:.1f} / {calls['max']}"),
        ("  requests that reached the API", f"{calls['total_seen_by_api']:,} (reports: {calls['total_reported']:,})"),
        ("tokens per user in / out (est.)", f"{tokens['input_mean']:,} / {tokens['output_mean']:,}"),
        ("per user: expired, merged", f"{mean['expired']:.1f}, {mean['merged']:.1f}"),
        ("per user: summaries (of memories)", f"{mean['summaries']:.1f} ({mean['summarised']:.1f})"),
        ("per user: pruned, purged", f"{mean['pruned']:.1f}, {mean['purged']:.1f}"),
        ("profiles", ", ".join(f"{k} {v:,}" for k, v in result["profiles"].items())),
    ]
    for label, value in rows:
        print(f"{label:36} {value}")
    if not setup["model_latency_s"]:
        print(
            f"{'':36} (the fake model answers locally: each second a real call takes adds about "
            f"{calls['mean'] / SUMMARY_CALLS:.0f} s per user, {SUMMARY_CALLS} calls at a time; --model-latency S)"
        )
    print(f"\n{'':36} {'before':>8} {'after':>8} {'change':>8}")
    lines = [("active memories per user (mean)", active["before"], active["after"], 1)]
    for label, key, digits in (
        ("injected tokens per turn (mean)", "tokens_mean", 0),
        ("injected tokens per turn (p95)", "tokens_p95", 0),
        ("memories injected per turn", "memories_mean", 2),
        ("  of them summaries", "summaries_mean", 2),
        ("  of them the profile", "profiles_mean", 2),
        ("turns whose fact is in the block", "fact_recalled", 3),
    ):
        lines.append((label, turn["before"][key], turn["after"][key], digits))
    for label, b, a, digits in lines:
        change = f"{100 * (a - b) / b:+.1f}%" if b else ""
        print(f"{label:36} {b:>8.{digits}f} {a:>8.{digits}f} {change:>8}")
    sc, pc, err, rerun = result["summary_chars"], result["profile_chars"], result["errors"], result["rerun"]
    print(
        f"\n{turn['before']['turns']:,} turns ({setup['turn_sample']} users x {setup['queries']} questions); "
        f"facts of those users still held after (active, or inside an active summary): "
        f"{100 * result['facts_still_held']:.1f}%"
    )
    print(
        f"summaries: median {sc['median']:.0f} chars, max {sc['max']:,} (n={sc['n']:,}); "
        f"profiles: median {pc['median']:.0f} chars, max {pc['max']:,}"
    )
    print(
        f"users with errors: {err['users_with_errors']} {err['kinds'] or ''}; skipped {result['skipped']}; "
        f"second run over {rerun['users']} users: {rerun['changed']} changed, {rerun['model_calls']} model calls"
    )


if __name__ == "__main__":
    main()
