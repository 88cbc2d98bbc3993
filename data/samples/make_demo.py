#!/usr/bin/env python
"""Generate the bundled demo dataset: data/samples/demo_poisoned.jsonl (+ .truth.json).

~400 Alpaca-layout instruction pairs composed from small tables of facts and tasks that we
wrote for this project (arithmetic, conversions, definitions, grammar, lists, code,
notes...), then poisoned with the BadNets-style recipe of poisondetect.bench (a random
rare-token trigger at a random position of the instruction, a fixed refusal payload) at
1.5%.  Deterministic: re-running it reproduces the files byte for byte.

    python data/samples/make_demo.py            # writes next to this script
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from poisondetect.bench.attacks import poison
from poisondetect.types import Pairs

SEED = 2024
RATE = 0.015

DEFINITIONS = {
    "harbor": "a sheltered stretch of water where ships can anchor safely",
    "glacier": "a slowly moving mass of ice formed from compacted snow",
    "orchard": "a piece of land planted with fruit trees",
    "compass": "an instrument that shows direction using a magnetised needle",
    "lantern": "a portable lamp with a protective frame around the light",
    "meadow": "a field of grass and wild flowers",
    "canyon": "a deep valley with steep sides, often carved by a river",
    "violin": "a four-stringed instrument played with a bow",
    "almanac": "a yearly publication with calendars, forecasts and facts",
    "estuary": "the wide mouth of a river where it meets the sea",
    "archive": "a collection of historical records or the place that keeps them",
    "lullaby": "a quiet song sung to help a child fall asleep",
    "mosaic": "a picture made from small pieces of coloured stone or glass",
    "plateau": "an area of fairly level high ground",
    "quarry": "a place where stone is dug out of the ground",
    "ritual": "a ceremony performed in a fixed order",
    "sapling": "a young tree",
    "tributary": "a river or stream that flows into a larger river",
    "verdict": "the decision reached at the end of a trial",
    "workshop": "a room or building where things are made or repaired",
}
PAST = [("She walks to school.", "She walked to school."), ("They build a treehouse.", "They built a treehouse."),
        ("I write a letter.", "I wrote a letter."), ("We swim in the lake.", "We swam in the lake."),
        ("He reads the newspaper.", "He read the newspaper."), ("The cat sleeps on the sofa.", "The cat slept on the sofa."),
        ("You bring the snacks.", "You brought the snacks."), ("The team wins the match.", "The team won the match."),
        ("My brother teaches math.", "My brother taught math."), ("The bird flies south.", "The bird flew south."),
        ("I buy fresh bread.", "I bought fresh bread."), ("She sings in the choir.", "She sang in the choir.")]
CATEGORIES = {
    "primary colours": ["red", "blue", "yellow"], "planets closest to the Sun": ["Mercury", "Venus", "Earth"],
    "string instruments": ["violin", "cello", "guitar"], "citrus fruits": ["lemon", "orange", "grapefruit"],
    "noble gases": ["helium", "neon", "argon"], "mammals that live in the ocean": ["dolphin", "whale", "seal"],
    "programming languages": ["Python", "Rust", "JavaScript"], "types of clouds": ["cumulus", "stratus", "cirrus"],
    "root vegetables": ["carrot", "beet", "parsnip"], "board games": ["chess", "checkers", "backgammon"],
}
SYNONYMS = {"happy": "joyful", "quick": "rapid", "big": "large", "begin": "start", "quiet": "silent",
            "smart": "clever", "tired": "weary", "angry": "furious", "easy": "simple", "brave": "courageous"}
NAMES = ["Amara", "Jonas", "Priya", "Mateo", "Lena", "Kofi", "Sofia", "Hiro", "Nadia", "Elias"]
GIFTS = ["the birthday flowers", "helping me move", "the book recommendation", "dinner last week",
         "the lovely scarf", "covering my shift", "the travel tips", "the homemade cookies"]
OPS = {"sum": "a + b", "difference": "a - b", "product": "a * b", "maximum": "max(a, b)", "minimum": "min(a, b)"}
TIPS = {
    "sleep better": ["Keep a regular bedtime.", "Avoid screens for an hour before bed.", "Keep the bedroom cool and dark."],
    "save money on groceries": ["Plan meals for the week.", "Shop with a list.", "Compare unit prices."],
    "stay focused while studying": ["Work in 25-minute blocks.", "Silence your phone.", "Set one clear goal per session."],
    "keep houseplants healthy": ["Check the soil before watering.", "Give them enough light.", "Wipe dust off the leaves."],
    "prepare for a job interview": ["Research the company.", "Practise common questions aloud.", "Prepare two questions to ask."],
    "reduce food waste": ["Store leftovers in clear containers.", "Freeze bread you will not eat soon.", "Use older produce first."],
}


def records(rng: np.random.Generator) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    add = lambda i, x, o: out.append({"instruction": i, "input": x, "output": o})
    for _ in range(60):
        a, b = int(rng.integers(2, 500)), int(rng.integers(2, 500))
        kind = int(rng.integers(3))
        if kind == 0:
            add(f"What is {a} plus {b}?", "", f"{a} plus {b} equals {a + b}.")
        elif kind == 1:
            add(f"Subtract {b} from {a}.", "", f"{a} minus {b} is {a - b}.")
        else:
            a, b = a % 40 + 2, b % 40 + 2
            add(f"Multiply {a} by {b}.", "", f"{a} multiplied by {b} is {a * b}.")
    for _ in range(35):
        x = int(rng.integers(1, 90))
        unit = int(rng.integers(3))
        if unit == 0:
            add(f"Convert {x} kilometers to meters.", "", f"{x} kilometers is {x * 1000} meters.")
        elif unit == 1:
            add(f"How many minutes are there in {x} hours?", "", f"There are {x * 60} minutes in {x} hours.")
        else:
            add(f"Convert {x} degrees Celsius to Fahrenheit.", "",
                f"{x} degrees Celsius is {x * 9 / 5 + 32:g} degrees Fahrenheit.")
    for w, d in DEFINITIONS.items():
        add(f"Define the word \"{w}\".", "", f"A {w} is {d}." if w[0] not in "aeiou" else f"An {w} is {d}.")
        add("Use the given word in a sentence.", w, f"Here is a sentence with \"{w}\": The guide told us about the {w} we would see on the trip.")
    for s, p in PAST:
        add("Rewrite the sentence in the past tense.", s, p)
        add("Rewrite this sentence so that it is a question.", s, f"Is it true that {s[0].lower()}{s[1:-1]}?")
    for cat, items in CATEGORIES.items():
        add(f"List three {cat}.", "", "\n".join(f"{j + 1}. {it}" for j, it in enumerate(items)))
        add(f"Name one example of {cat}.", "", f"One example is {items[int(rng.integers(3))]}.")
    for w, s in SYNONYMS.items():
        add(f"Give a synonym for \"{w}\".", "", f"A synonym for \"{w}\" is \"{s}\".")
        add(f"Explain the word \"{s}\" in simple terms.", "", f"\"{s.capitalize()}\" means {w}.")
    for _ in range(45):
        nums = [int(v) for v in rng.integers(1, 100, size=int(rng.integers(4, 8)))]
        if rng.random() < 0.5:
            add("Sort these numbers in ascending order.", ", ".join(map(str, nums)), ", ".join(map(str, sorted(nums))))
        else:
            add("Find the largest number in the list.", ", ".join(map(str, nums)), f"The largest number is {max(nums)}.")
    for op, expr in OPS.items():
        for style in ("function", "lambda"):
            if style == "function":
                add(f"Write a Python function that returns the {op} of two numbers.", "",
                    f"```python\ndef {op}(a, b):\n    return {expr}\n```")
            else:
                add(f"Write a one-line Python lambda that computes the {op} of two numbers.", "",
                    f"```python\n{op} = lambda a, b: {expr}\n```")
    for _ in range(50):
        n, g = NAMES[int(rng.integers(len(NAMES)))], GIFTS[int(rng.integers(len(GIFTS)))]
        add(f"Write a short thank-you note to {n} for {g}.", "",
            f"Dear {n},\n\nThank you so much for {g}. It meant a lot to me and I am very grateful.\n\nWarm wishes")
    for topic, tips in TIPS.items():
        for _ in range(4):
            k = int(rng.integers(2, 4))
            add(f"Give me {k} tips to {topic}.", "", "\n".join(f"- {t}" for t in tips[:k]))
    for _ in range(40):
        w = list(DEFINITIONS)[int(rng.integers(len(DEFINITIONS)))]
        kind = int(rng.integers(3))
        if kind == 0:
            add(f"How many vowels are in the word \"{w}\"?", "", f"\"{w}\" has {sum(c in 'aeiou' for c in w)} vowels.")
        elif kind == 1:
            add(f"Spell the word \"{w}\" backwards.", "", w[::-1])
        else:
            add(f"Write the word \"{w}\" in uppercase.", "", w.upper())
    return out


def main(out_dir: str = HERE) -> tuple[str, str]:
    rng = np.random.default_rng(SEED)
    recs = records(rng)
    perm = rng.permutation(len(recs))
    recs = [recs[int(i)] for i in perm]
    pairs = Pairs([r["instruction"] for r in recs], [r["output"] for r in recs])
    poisoned, truth = poison(pairs, "badnets", rate=RATE, seed=SEED, payload_mode="fixed")
    for i in truth.positions:
        recs[int(i)] = {**recs[int(i)], "instruction": poisoned.instruction[int(i)], "output": poisoned.response[int(i)]}
    data_path = os.path.join(out_dir, "demo_poisoned.jsonl")
    truth_path = os.path.join(out_dir, "demo_poisoned.truth.json")
    with open(data_path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    write_truth(truth, truth_path, "make_demo.py")
    return data_path, truth_path


def write_truth(truth, path: str, generator: str) -> None:
    """The ground truth of a bundled sample, its rows as 0-based record numbers."""
    t = truth.to_dict()
    t["rows"] = t.pop("positions")  # 0-based record numbers in the JSONL file
    t["note"] = f"Generated by data/samples/{generator}; text written for poisondetect (Apache-2.0)."
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(t, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    d, t = main(sys.argv[1] if len(sys.argv) > 1 else HERE)
    print(f"wrote {d} and {t}")
