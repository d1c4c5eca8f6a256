"""The texts of the ONNX parity test: 530 of them, varied where tokenisers and pooling differ, made the same
way every run (a seeded generator, no files).

Short and long (past the model's 256 word pieces, where both embedders must cut at the same place), mixed
case and digits, many scripts, emoji and combining marks, invisible characters, punctuation alone, and the
empty string.
"""

# ruff: noqa: RUF001  (look-alike characters such as full-width commas and Greek capitals are the point here)
from __future__ import annotations

import random
import string

WORDS = (  # noqa: SIM905  (a sentence of words reads better than a column of them)
    "metric units kilometres kilograms Celsius sister Lisbon order refund damaged prefer coffee tea meeting "
    "Tuesday deadline project budget flight hotel allergy peanuts vegetarian python rust database migration "
    "deploy Lambda memory agent Claude recall forget birthday anniversary gym running marathon piano guitar "
    "Berlin Tokyo Nairobi São Paulo ORD-48213 invoice 2026-11-25 v1.2.3 e-mail self-hosted GPU don't it's"
).split()
SCRIPTS = (
    "日本語のテキストを埋め込みます",
    "我喜欢喝绿茶，不喜欢咖啡。",
    "한국어 문장도 있습니다",
    "Я предпочитаю метрическую систему",
    "Η αδελφή μου ζει στη Λισαβόνα",
    "أفضّل الوحدات المترية",
    "אני מעדיף יחידות מטריות",
    "मुझे चाय पसंद है",
    "ฉันชอบกาแฟ",
    "Émilie préfère le thé à la menthe",
    "Ich bevorzuge metrische Einheiten, Größe: 1,80 m",
    "niño, señor, ¿qué tal? ¡vale!",
    "Zoë’s naïve café façade",
)
SYMBOLS = ("🍵", "🚲", "👩‍👩‍👧", "🇵🇹", "∑∫√∞", "™©®", "½¾", "→⇒↔", "\u0301", "\u200b", "\u00a0", "\ufeff", "\u2028")
PUNCTUATION = string.punctuation + "«»¿¡“”‘’—–…·•§¶†‡"


def parity_texts(seed: int = 11) -> list[str]:
    rng = random.Random(seed)

    def words(count: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(count))

    texts = ["", " ", "\t\n", "a", "A", "I", "?", "a" * 1000, "https://example.com/a?b=c#d", "alice@example.com"]
    texts += [words(rng.randint(1, 3)) for _ in range(140)]  # short
    texts += [  # sentences, mixed case and digits
        f"{words(rng.randint(4, 20)).capitalize()} {rng.randint(0, 10**6)}{rng.choice('.!?;')}" for _ in range(170)
    ]
    # Long, past 256 word pieces (each costs as much as 30 short texts, so fewer of them).
    texts += [words(rng.randint(260, 700)) for _ in range(25)]
    texts += ["\n".join(words(40) for _ in range(rng.randint(8, 15))) for _ in range(5)]  # on many lines
    texts += [  # scripts and symbols, alone and among English words
        " ".join(rng.choice((*SCRIPTS, *SYMBOLS, *WORDS)) for _ in range(rng.randint(1, 12))) for _ in range(110)
    ]
    texts += ["".join(rng.choice(PUNCTUATION) for _ in range(rng.randint(1, 30))) for _ in range(50)]  # punctuation
    texts += [rng.choice(SCRIPTS) * rng.randint(20, 60) for _ in range(10)]  # long in other scripts
    texts += ["".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 8))) for _ in range(10)]  # symbols alone
    return texts
