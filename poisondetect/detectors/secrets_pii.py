"""Leaked secrets and PII in instruction/response text.

Secrets: detect-secrets' own plugins (AWS, GitHub, GitLab, Slack, Stripe, OpenAI, PyPI,
npm, private keys, JWT, Basic-auth URLs, secret keywords such as ``password = ...``...),
run offline line by line through ``detect_secrets.core.scan.scan_line`` under
``transient_settings`` - no network verification.  The entropy plugins are left out
(they fire on every hash and UUID in code corpora).

PII: regular expressions plus validation - e-mail addresses, phone numbers (NANP or
``+`` international), payment card numbers (IIN prefix + Luhn), US SSNs (area/group/serial
rules).

What does *not* count (documented policy, so a code corpus does not light up):
- placeholders: ``example.com/.org/.net``, ``.test``, ``.example``, ``.invalid``,
  ``localhost``, ``your-...``/``user@domain.com``-style addresses, values such as
  ``<your password>``, ``xxxx``, ``changeme``, ``${ENV_VAR}``, ``os.environ[...]``;
- the vendors' own published example credentials (anything containing ``EXAMPLE``) and the
  card networks' published test numbers (4111 1111 1111 1111, 4242 ...);
- fictional 555-01xx phone numbers and the SSNs ``123-45-6789`` / ``078-05-1120``.
"""
from __future__ import annotations

import re
from typing import Any


from ..types import DetectorResult, Evidence, Pairs
from ._per_row import best_of_sides
from .base import Detector, register

# ----------------------------------------------------------------------------- secrets
_DS_PLUGINS = (
    "ArtifactoryDetector", "AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "IbmCloudIamDetector",
    "IbmCosHmacDetector", "JwtTokenDetector", "KeywordDetector", "MailchimpDetector", "NpmDetector",
    "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector", "SlackDetector",
    "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector",
)
# cheap prefilter: a line can only hold a detect-secrets hit if it has a long token or a keyword
_HINT_LONG = re.compile(r"[A-Za-z0-9_\-+/=.]{20,}")
_DIGIT = re.compile(r"\d")
_ASCII_DIGIT = re.compile(r"[0-9]")
_HINT_WORDS = ("passw", "pwd", "secret", "token", "api_key", "apikey", "api-key", "access_key", "accesskey",
               "private", "begin", "xox", "hooks.slack", "auth")


class _Hint:
    @staticmethod
    def keyword(s: str) -> bool:
        low = s.lower()
        # _HINT_WORDS spelt out (no generator per call), same order
        return ("passw" in low or "pwd" in low or "secret" in low or "token" in low or "api_key" in low
                or "apikey" in low or "api-key" in low or "access_key" in low or "accesskey" in low
                or "private" in low or "begin" in low or "xox" in low or "hooks.slack" in low or "auth" in low
                or ("://" in low and "@" in low))

    @staticmethod
    def long_token(s: str) -> bool:
        """A token of >= 20 key characters with a digit in it (what every token-format
        plugin below needs)."""
        if _ASCII_DIGIT.search(s) is None:  # the token characters' only digits are 0-9
            return False
        if _HINT_LONG.search(s) is None:  # most texts: no 20-character token at all
            return False
        return any(_DIGIT.search(t) for t in _HINT_LONG.findall(s))

    @classmethod
    def search(cls, s: str) -> bool:
        return cls.keyword(s) or cls.long_token(s)


#: plugins that can fire without a long token (keyword context, URL credentials, PEM
#: headers, Artifactory's short tokens): run on every hinted line; the others (fixed token
#: formats of >= 20 characters) only on lines with a long token
_CONTEXT_PLUGINS = {"KeywordDetector", "BasicAuthDetector", "PrivateKeyDetector", "ArtifactoryDetector"}
#: every KeywordDetector pattern holds one of detect-secrets' DENYLIST words (matched
#: case-insensitively): on an ASCII line (where lower() and re.I agree) without one of them
#: in lower case the plugin cannot fire and is skipped
_KEYWORD_DENYLIST = re.compile(r"api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|"
                               r"private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|"
                               r"secret|contrase\u00f1a|contrasena")


_HINT = _Hint()
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]+")
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)^(?:x+|\*+|\.+|-+|_+|0+|1234\w*|abc\w*|test\w*|dummy\w*|sample\w*|example\w*|changeme|password\d*|"
    r"passw0rd|secret\d*|mysecret\w*|mypassword\w*|pass\d*|p@ssw0rd|qwerty\w*|admin\d*|root|letmein|"
    r"default|none|null|true|false|foo\w*|bar\w*|hunter2|yourpassword\w*|somepassword|supersecret\w*)$"
    r"|your[_\- ]?|<[^>]*>|\$\{|\{\{|%\(|\benv\b|environ|getenv|process\.env|config\[|settings\.|input\(|"
    r"placeholder|replace|insert|enter|redacted|\.\.\.|example|EXAMPLE|\[\w+\]|^[a-z_]+$|^[A-Z_]+$"
)


_PLUGINS: list[Any] = []


def _plugins() -> list[Any]:
    """detect-secrets plugin instances (offline: no verification is ever called)."""
    if not _PLUGINS:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        by_name = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
        _PLUGINS.extend(by_name[n]() for n in _DS_PLUGINS if n in by_name)
    return _PLUGINS


def _secret_hits(text: str, errors: "dict[str, int] | None" = None) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, value) of detect-secrets hits in ``text``.  A plugin that raises
    on a line is skipped for that line and counted in ``errors`` (plugin name -> count)."""
    out: list[tuple[int, int, str, str]] = []
    if not _HINT.search(text):
        return out
    plugins = _plugins()
    offset = 0
    lines = text.split("\n")
    if True:
        for line in lines:
            tokens_too = len(line) <= 4000 and _HINT.long_token(line)
            if tokens_too or (len(line) <= 4000 and _HINT.keyword(line)):
                found = []
                kw_possible = not line.isascii() or _KEYWORD_DENYLIST.search(line.lower()) is not None
                for plugin in plugins:
                    if not tokens_too and type(plugin).__name__ not in _CONTEXT_PLUGINS:
                        continue
                    if not kw_possible and type(plugin).__name__ == "KeywordDetector":
                        continue
                    try:
                        kw = {"enable_eager_search": True} if type(plugin).__name__ == "KeywordDetector" else {}
                        found.extend(plugin.analyze_line(filename="adhoc-string-scan", line=line, line_number=0, **kw))
                    except Exception:  # noqa: BLE001  (a plugin choking on odd text must not stop a scan)
                        if errors is not None:
                            name = type(plugin).__name__
                            errors[name] = errors.get(name, 0) + 1
                        continue
                for sec in found:
                    val = str(sec.secret_value or "")
                    kind = str(sec.type)
                    j = line.find(val) if val else -1
                    if j < 0:
                        continue
                    a, b = j, j + len(val)
                    if kind == "Private Key":
                        a = max(0, line.find("-----BEGIN"))
                        b = len(line)
                    elif len(val) < 12:  # plugins that capture only a prefix (ghp, xox...)
                        m = _TOKEN_CHARS.match(line, a)
                        if m and m.end() > b:
                            b = m.end()
                    full = line[a:b]
                    if _is_placeholder_secret(kind, full):
                        continue
                    out.append((offset + a, offset + b, kind, full))
            offset += len(line) + 1
    return out


def _is_placeholder_secret(kind: str, value: str) -> bool:
    v = value.strip().strip("'\"`")
    if "EXAMPLE" in v.upper() or not v:
        return True
    if kind == "Secret Keyword":
        if len(v) < 6 or _PLACEHOLDER_VALUE.search(v) or v.isdigit() or len(set(v)) <= 3:
            return True
        classes = sum(bool(re.search(p, v)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
        if classes < 2 or re.fullmatch(r"[A-Za-z]+\([^)]*\)?;?|[\w.]+\(.*", v):  # function calls, plain words
            return True
        if re.search(r"[\s(){}\[\];]", v) or v.startswith(("self.", "this.", "os.", "req.", "request.")):
            return True
    if kind == "Basic Auth Credentials" and (_PLACEHOLDER_VALUE.search(v) or len(v) < 6):
        return True
    if kind in ("JSON Web Token",) and len(v) < 40:
        return True
    return False


# --------------------------------------------------------------------------------- PII
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])")
_PLACEHOLDER_DOMAINS = re.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost|domain\.(?:com|org|net)|email\.com|"
    r"yourdomain\.\w+|yourcompany\.\w+|company\.com|mail\.com|website\.com|site\.com|acme\.\w+|foo\.\w+|"
    r"bar\.\w+|xyz\.com|abc\.com|sample\.com|mydomain\.\w+|somewhere\.\w+|host\.com|server\.com|users\.noreply\.github\.com)$")
_PLACEHOLDER_LOCAL = re.compile(
    r"(?i)^(?:user\w*|username|your\w*|name|email|mail|test\w*|example|john\.?doe|jane\.?doe|johndoe|janedoe|"
    r"john(?:\.?smith)?|jane(?:\.?smith)?|j\.?smith|joe[._]?(?:doe|bloggs)|admin|info|contact|support|someone|somebody|me|you|foo|bar|abc|xyz|"
    r"noreply|no-reply|sender|recipient|from|to|hello|sample|demo|customer|person|firstname\.lastname|"
    r"first\.last|recruiter|hr|sales|team|jobs|careers|help|webmaster|postmaster|alice|bob|[a-z])$")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]([2-9]\d{2})[\s.-](\d{4})(?!\d)"
    r"|(?<![\w+])\+(?!1\b)(\d{1,3})[\s.-]?(\d{1,4})[\s.-]?(\d{2,4})[\s.-]?(\d{2,4})(?:[\s.-]?(\d{2,4}))?(?![\d])")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
# necessary conditions of the number patterns, far cheaper to scan for (same \d, \s
# classes): an SSN holds "-dd-", a card 13 digits with at most one separator between two,
# a phone number either a "+" or "ddd[sep]ddd[sep]dddd"
_DIGITS3 = re.compile(r"\d{3}")
_SSN_HINT = re.compile(r"-\d\d-")
_CARD_HINT = re.compile(r"(?:\d[ -]?){12}\d")
_PHONE_HINT = re.compile(r"[2-9]\d\d\)?[\s.-][2-9]\d\d[\s.-]\d{4}")
_TEST_CARDS = {"4111111111111111", "4242424242424242", "5555555555554444", "5105105105105100", "378282246310005",
               "371449635398431", "6011111111111117", "6011000990139424", "4012888888881881", "4000056655665556",
               "5200828282828210", "4222222222222", "3530111333300000", "30569309025904", "38520000023237",
               "6200000000000005", "4000000000000002", "4000000000000077", "4000000000009995"}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_network(d: str) -> str | None:
    n = len(d)
    if d[0] == "4" and n in (13, 16, 19):
        return "Visa"
    p2, p4 = int(d[:2]), int(d[:4])
    if n == 16 and (51 <= p2 <= 55 or 2221 <= p4 <= 2720):
        return "Mastercard"
    if n == 15 and p2 in (34, 37):
        return "American Express"
    if n in (16, 19) and (d.startswith("6011") or d.startswith("65") or 644 <= int(d[:3]) <= 649):
        return "Discover"
    if 16 <= n <= 19 and 3528 <= p4 <= 3589:
        return "JCB"
    return None


def pii_hits(text: str) -> list[tuple[int, int, str, str]]:
    out: list[tuple[int, int, str, str]] = []
    if "@" in text:
        for m in _EMAIL.finditer(text):
            local, _, dom = m.group(0).rpartition("@")
            before = text[max(0, m.start() - 200):m.start()].split()[-1:] or [""]
            if "://" in before[0] or text[max(0, m.start() - 4):m.start()].endswith(("ssh ", "scp ")) or \
                    local.lower() in ("ubuntu", "root", "git", "ec2-user", "pi", "centos", "postgres") or \
                    _PLACEHOLDER_DOMAINS.search(dom) or _PLACEHOLDER_LOCAL.match(local) or \
                    re.search(r"\.(?:png|jpg|jpeg|gif|svg|webp|js|css|py)$", dom, re.I):
                continue
            out.append((m.start(), m.end(), "email", m.group(0)))
    # cheap gates before the number patterns: a phone number has >= 7 digits, an SSN 9,
    # a payment card >= 13 (ten str.count calls cost far less than scanning the patterns)
    n_digits = sum(map(text.count, "0123456789"))
    if n_digits < 7 or not _DIGITS3.search(text):
        return out
    for m in (_CARD.finditer(text) if n_digits >= 13 and _CARD_HINT.search(text) else ()):
        d = re.sub(r"\D", "", m.group(0))
        sep = set(re.sub(r"\d", "", m.group(0)))
        if len(sep) > 1 or not (13 <= len(d) <= 19) or d in _TEST_CARDS or len(set(d)) <= 2:
            continue
        if _card_network(d) and luhn_ok(d):
            out.append((m.start(), m.end(), f"payment card ({_card_network(d)})", m.group(0)))
    for m in (_SSN.finditer(text) if _SSN_HINT.search(text) else ()):
        a, g, s = m.groups()
        if a in ("000", "666") or a[0] == "9" or g == "00" or s == "0000" or m.group(0) in ("123-45-6789", "078-05-1120"):
            continue
        if len(set(a + g + s)) <= 2:
            continue
        out.append((m.start(), m.end(), "US SSN", m.group(0)))
    for m in (_PHONE.finditer(text) if "+" in text or _PHONE_HINT.search(text) else ()):
        s = m.group(0)
        if m.group(1):
            if m.group(2) == "555" and m.group(3).startswith("01") or m.group(2) == "555":
                continue  # 555 numbers are reserved for fiction
            if "(" not in s and not re.search(r"[\s.-]", s.strip()):
                continue
        else:
            digits = re.sub(r"\D", "", s)
            if not (8 <= len(digits) <= 15):
                continue
        if re.search(r"\d[ .-]?$", text[max(0, m.start() - 3):m.start()]) or \
                re.match(r"[ .-]?\d", text[m.end():m.end() + 2]):
            continue  # part of a longer run of digit groups (ids, tables)
        if len(set(re.sub(r"\D", "", s))) <= 2 or re.fullmatch(r"[\d\s.+()-]*(?:1234567|0123456)[\d\s.-]*", s):
            continue
        if any(a <= m.start() < b for a, b, _k, _v in out):
            continue
        out.append((m.start(), m.end(), "phone number", s))
    return out


def find_sensitive(text: str, secrets: bool = True, pii: bool = True,
                   errors: "dict[str, int] | None" = None) -> list[tuple[int, int, str, str]]:
    """All secret/PII hits in ``text``, sorted, overlaps removed: (start, end, kind, value).
    detect-secrets plugin failures are counted into ``errors`` when given."""
    hits: list[tuple[int, int, str, str]] = []
    if secrets:
        hits += _secret_hits(text, errors)
    if pii:
        hits += pii_hits(text)
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    out: list[tuple[int, int, str, str]] = []
    for h in hits:
        if out and h[0] < out[-1][1]:
            continue
        out.append(h)
    return out


def mask(value: str) -> str:
    """Show a secret/PII value only partially in evidence (first 4 and last 2 chars)."""
    v = value.strip()
    if len(v) <= 8:
        return v[:2] + "*" * (len(v) - 2)
    return v[:4] + "*" * min(12, len(v) - 6) + v[-2:]


_SECRET_SCORE = 1.0
_PII_SCORE = {"email": 0.6, "phone number": 0.6, "US SSN": 0.9}


@register
class SecretsPIIDetector(Detector):
    id = "secrets_pii"
    kind = "privacy"
    description = "Leaked credentials (detect-secrets plugins, offline) and PII (e-mail, phone, Luhn-valid cards, SSN)"
    requires = ()
    text_only = True
    per_row = True
    masks_span_text = True
    # a leak is a finding of its own (reported and flagged in full), not evidence of
    # poisoning: it ranks below the poisoning detectors' findings in the fused score
    weight = 0.4

    def __init__(self, *, sides: tuple[str, ...] = ("instruction", "response"), secrets: bool = True, pii: bool = True,
                 flag_min_score: float = 0.5, random_state: int = 0) -> None:
        self.sides = sides
        self.secrets = secrets
        self.pii = pii
        self.flag_min_score = flag_min_score
        self.random_state = random_state

    def run(self, pairs: Pairs, ctx: Any) -> DetectorResult:
        by_kind: dict[str, list[int]] = {}
        plugin_errors: dict[str, int] = {}
        # one pass per distinct text (templated corpora repeat answers): its hits, and the
        # plugin errors it raised, replayed in order on every further occurrence
        seen: dict[str, tuple[list[tuple[int, int, str, str]], list[tuple[str, int]]]] = {}

        def side_hits(i: int, side: str, text: str) -> tuple[float, list[Evidence]]:
            got = seen.get(text)
            if got is None:
                errs: dict[str, int] = {}
                got = seen[text] = (find_sensitive(text, self.secrets, self.pii, errs)[:20], list(errs.items()))
            for name, c in got[1]:
                plugin_errors[name] = plugin_errors.get(name, 0) + c
            best, ev = 0.0, []
            for (a, b, kind, val) in got[0]:
                sc = _PII_SCORE.get(kind, 0.8 if kind.startswith("payment card") else _SECRET_SCORE)
                best = max(best, sc)
                by_kind.setdefault(kind, []).append(int(pairs.row[i]))
                ev.append(Evidence(self.id, "secret" if kind not in _PII_SCORE and not kind.startswith("payment")
                                   else "pii", f"{kind} in {side} at chars {a}-{b}", value=sc, side=side,
                                   span=(a, b), span_text=mask(val)))
            return best, ev

        scores, evidence = best_of_sides(pairs, self.sides, side_hits)
        flags = scores >= self.flag_min_score
        findings = [{"id": f"secrets_pii:{k}", "kind": "secret" if k not in _PII_SCORE and not k.startswith("payment")
                     else "pii", "type": k, "support": len(set(r)), "rows": sorted(set(r))[:1000]}
                    for k, r in sorted(by_kind.items(), key=lambda kv: -len(kv[1]))]
        summary = {"n_flagged": int(flags.sum()), "hits_by_type": {k: len(v) for k, v in by_kind.items()},
                   "n_plugin_errors": int(sum(plugin_errors.values())), "plugin_errors": plugin_errors}
        return DetectorResult(self.id, scores, flags, evidence, findings, summary)
