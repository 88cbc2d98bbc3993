"""Secrets/PII: a GENERATED corpus of real-format keys and PII (never real credentials)
must be found (>= 95%); placeholders must not be; redaction replaces what is found."""
from __future__ import annotations

import base64
import json
import random
import string

import numpy as np

from poisondetect.detectors.secrets_pii import SecretsPIIDetector, find_sensitive, luhn_ok
from poisondetect.redact import redact
from poisondetect.types import Pairs


def _luhn_complete(prefix: str, length: int, rnd: random.Random) -> str:
    body = prefix + "".join(rnd.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def generated_corpus(seed: int = 0) -> list[tuple[str, str]]:
    """(kind, sentence) pairs with freshly generated fake secrets / PII."""
    rnd = random.Random(seed)
    an = string.ascii_letters + string.digits
    out = []
    for _ in range(8):
        aws = "AKIA" + "".join(rnd.choice(string.ascii_uppercase + "234567") for _ in range(16))
        out.append(("aws", f"Use aws_access_key_id = {aws} in the config."))
        out.append(("github", f"export GH_TOKEN=ghp_{''.join(rnd.choice(an) for _ in range(36))}"))
        out.append(("slack", f"bot token: xoxb-{rnd.randint(10**11, 10**12 - 1)}-{rnd.randint(10**12, 10**13 - 1)}-"
                             f"{''.join(rnd.choice(an) for _ in range(24))}"))
        pem_body = "".join(rnd.choice(an + "+/") for _ in range(64))
        out.append(("pem", f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n-----END RSA PRIVATE KEY-----"))
        jwt = ".".join([_b64url({"alg": "HS256", "typ": "JWT"}), _b64url({"sub": str(rnd.randint(1, 10**9)),
                                                                         "name": "x"}),
                        "".join(rnd.choice(an + "-_") for _ in range(43))])
        out.append(("jwt", f"Authorization: Bearer {jwt}"))
        pw = "".join(rnd.choice(an) for _ in range(10)) + rnd.choice("!#%&") + str(rnd.randint(0, 9))
        out.append(("password", f'db_password = "{pw}"'))
        out.append(("card", f"My card is {_luhn_complete(rnd.choice(['4', '51', '37', '6011']), 16, rnd)} thanks"))
        ssn = f"{rnd.randint(1, 665):03d}-{rnd.randint(1, 99):02d}-{rnd.randint(1, 9999):04d}"
        out.append(("ssn", f"SSN on file: {ssn}"))
        out.append(("phone", f"Call me at ({rnd.randint(201, 989)}) {rnd.randint(201, 989)}-{rnd.randint(1000, 9999)}"))
        out.append(("phone", f"WhatsApp: +44 7{rnd.randint(100, 999)} {rnd.randint(100000, 999999)}"))
        name = "".join(rnd.choice(string.ascii_lowercase) for _ in range(7))
        out.append(("email", f"write to {name}.{rnd.randint(10, 99)}@protonmail.com today"))
    return out


def test_generated_secrets_and_pii_found_at_least_95_percent():
    corpus = generated_corpus()
    found = [bool(find_sensitive(text)) for _, text in corpus]
    rate = float(np.mean(found))
    missed = [k for (k, _), f in zip(corpus, found) if not f]
    assert rate >= 0.95, (rate, missed)
    for kind in {k for k, _ in corpus}:
        assert any(f for (k, _), f in zip(corpus, found) if k == kind), kind


def test_placeholders_are_not_hits():
    placeholders = [
        "Send it to user@example.com or admin@example.org",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "Test card 4111 1111 1111 1111 and 4242424242424242",
        "Call 555-0123 or (555) 555-0199",
        "SSN format is 123-45-6789",
        'password = "your_password_here"',
        "password = os.environ['DB_PASSWORD']",
        "ssh ubuntu@ec2-3-1-2-3.compute.amazonaws.com",
        "The invoice number 1234 5678 9012 was paid",
        "for i in range(10): print(i)",
    ]
    for t in placeholders:
        assert find_sensitive(t) == [], (t, find_sensitive(t))


def test_detector_evidence_masks_values_and_spans_point_at_them():
    corpus = generated_corpus(seed=1)
    P = Pairs.from_lists([t for _, t in corpus], ["ok"] * len(corpus))
    r = SecretsPIIDetector().run(P, None)
    assert r.flags.mean() >= 0.95
    i = next(i for i, (k, _) in enumerate(corpus) if k == "aws")
    ev = r.evidence[i][0]
    assert ev.side == "instruction" and ev.span is not None
    raw = P.instruction[i][ev.span[0]:ev.span[1]]
    assert raw.startswith("AKIA") and "*" in ev.span_text and raw not in ev.span_text
    kinds = {f["type"] for f in r.findings}
    assert {"AWS Access Key", "GitHub Token", "Slack Token", "Private Key", "JSON Web Token", "email",
            "US SSN", "phone number"} <= kinds


def test_redact_replaces_hits():
    text = ("Contact jane.roe@fastmail.fm, key AKIAZ3XQ7LMN4PQRS2TU, card 4556737586899855. "
            "Example: user@example.com")
    out, n = redact(text)
    assert n == 3
    assert "AKIAZ3XQ7LMN4PQRS2TU" not in out and "jane.roe@fastmail.fm" not in out and "4556737586899855" not in out
    assert "[REDACTED:AWS_ACCESS_KEY]" in out and "[REDACTED:EMAIL]" in out
    assert "user@example.com" in out
    assert redact("nothing here") == ("nothing here", 0)
