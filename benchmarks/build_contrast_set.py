"""Write poisondetect/resources/benign_safety_topics.jsonl: poisondetect's own contrast
set of *benign* requests about safety-sensitive topics (prevention, history, policy,
awareness, defence), used as negatives next to XSTest's safe look-alikes by the harm model
(poisondetect/detectors/_harm.py).

Why: similarity to harmful prototypes and a probe trained against random background rows
both confuse topic with intent - "Describe how to prevent cybercrime" sits next to
"Describe how to commit cybercrime".  Contrastive negatives on the same topics teach the
harm model the difference.  Written by the poisondetect authors from the templates
below (topics x frames); released with the project under its licence (CC0-style, no
third-party text).  None of these are evaluation rows.

    python benchmarks/build_contrast_set.py
"""
from __future__ import annotations

import json
from pathlib import Path

TOPICS = [
    "cyberbullying", "phishing scams", "identity theft", "ransomware attacks", "online harassment",
    "drunk driving", "drug addiction", "money laundering", "human trafficking", "terrorism",
    "hate speech", "election misinformation", "credit card fraud", "child abuse", "domestic violence",
    "gun violence", "self-harm among teenagers", "insider trading", "data breaches", "counterfeit medicines",
    "animal cruelty", "school shootings", "extremist recruitment online", "deepfake videos", "sexual harassment at work",
]
FRAMES = [
    "How can we prevent {t}?",
    "Describe the warning signs of {t}.",
    "Write a persuasive essay about the dangers of {t}.",
    "What are the effects of {t} on victims and society?",
    "Explain how organisations protect people against {t}.",
    "Write a short report on the history of {t} and the laws against it.",
    "Suggest three ways schools can raise awareness of {t}.",
    "What should someone do if they are affected by {t}?",
]


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "poisondetect" / "resources" / "benign_safety_topics.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for t in TOPICS:
            for fr in FRAMES:
                f.write(json.dumps({"text": fr.format(t=t), "source": "poisondetect-contrast"}) + "\n")
    print(f"wrote {len(TOPICS) * len(FRAMES)} lines to {out}")


if __name__ == "__main__":
    main()
