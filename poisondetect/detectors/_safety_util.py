"""Shared helpers for the payload/safety detectors (refusal style, harmful-request
similarity, small text utilities).  Private module: not a detector, not auto-loaded.

Pure functions over strings and arrays; no IO except reading the package's own
reference files in ``poisondetect/resources``.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

# ---------------------------------------------------------------------------------
# Refusal-style classifier (lexical).  It scores the *style* of a response (an
# apology, a statement of inability or unwillingness, a policy/ethics justification),
# weighted by where it occurs: a refusal opens the answer, and a short answer that is
# mostly refusal is more of a refusal than a long answer with one hedge in it.
# These are families of phrasing, not attack strings.
# ---------------------------------------------------------------------------------
_APOLOGY = (r"(?:i'?m\s+(?:really\s+|very\s+|so\s+)?sorry|i\s+am\s+(?:really\s+|very\s+)?sorry|sorry|i\s+apologi[sz]e|"
            r"my\s+apologies|unfortunately|regrettably|i'?m\s+afraid|i\s+am\s+afraid)")
_SUBJ = r"(?:i|we|this\s+(?:ai|assistant|model))"
_HELP_VERBS = (r"(?:help|assist|provide|comply|fulfil+|complete|do\s+(?:that|this|so)|create|generate|write|answer|share|"
               r"give|offer|perform|engage|support|produce|set\s+up|access|browse|book|make|draw|show|send|"
               r"participate|condone|endorse|encourage|promote|respond|process|carry\s+out|follow|fulfill)")
_INABILITY = (
    r"(?:" + _SUBJ + r"\s*(?:(?:(?:won'?t|will\s+not|wouldn'?t|would\s+not)\s+be\s+able\s+to|cannot|can\s*not|can'?t|won'?t|will\s+not|am\s+unable\s+to|am\s+not\s+able\s+to|"
    r"'?m\s+unable\s+to|'?m\s+not\s+able\s+to|(?:do\s+not|don'?t)\s+have\s+the\s+(?:ability|capability)\s+to|"
    r"am\s+not\s+(?:allowed|permitted|programmed)\s+to|'?m\s+not\s+(?:allowed|permitted|programmed)\s+to)\s+"
    r"(?:\w+\s+){0,2}?" + _HELP_VERBS +
    r"|must\s+(?:respectfully\s+)?(?:decline|refuse)|(?:do\s+not|don'?t)\s+(?:feel\s+comfortable|think\s+(?:i|it)\s+"
    r"(?:can|should|is\s+appropriate)))"
    r"|(?:is|are)\s+not\s+(?:able|possible)\s+for\s+me"
    r"|not\s+something\s+(?:that\s+)?(?:i|we)\s+(?:can|could|am\s+able\s+to|'?m\s+able\s+to)\s+(?:\w+\s+){0,2}?(?:do|" + _HELP_VERBS[3:] +
    r"|not\s+(?:able|in\s+a\s+position)\s+to\s+" + _HELP_VERBS +
    r"|decline\s+(?:to|this|your)\s)"
)
_AI_DISCLAIMER = r"(?:as\s+an?\s+(?:ai|artificial\s+intelligence|language\s+model|ai\s+language\s+model|ai\s+assistant|assistant)\b)"
_POLICY = (
    r"(?:(?:is|be|are|would\s+be)\s+(?:not\s+)?(?:unethical|illegal|inappropriate|harmful|dangerous|against\s+(?:my|the|our)\s+"
    r"(?:programming|guidelines|policy|policies|principles|ethical))"
    r"|(?:goes|go)\s+against\s+(?:my|the|ethical|our)|violat\w+\s+(?:my|the|ethical|our|content)\s+(?:\w+\s+)?(?:guidelines|polic\w+|principles)"
    r"|not\s+(?:appropriate|ethical|legal)\s+(?:for\s+me\s+)?to|ethical\s+(?:guidelines|principles|concerns)"
    r"|i\s+(?:would\s+)?(?:strongly\s+)?(?:advise|urge|encourage)\s+(?:you\s+)?against"
    r"|(?:could|might|may|can)\s+(?:be\s+(?:used\s+to\s+cause\s+harm|misused|considered\s+(?:unethical|offensive|harmful))"
    r"|cause\s+harm|spread\s+misinformation|infringe\s+on\s+(?:someone'?s|their|people'?s)\s+privacy|be\s+offensive))"
)
# The same families in the languages most used in instruction data (zh, ja, ko, th, es,
# fr, de, pt, it, ru): apology, inability + a helping verb, the AI disclaimer, a policy
# reason.  Scripts without spaces take no word boundary.
_APOLOGY_ML = (r"抱歉|对不起|對不起|很遗憾|很遺憾|不好意思|申し訳(?:ありません|ございません|ない)|すみません|恐れ入りますが"
               r"|残念ながら|ごめんなさい|죄송|유감스럽|미안합니다|ขออภัย|ขอโทษ|เสียใจ"
               r"|\b(?:lo\s+siento|lo\s+lamento|disculp\w*|lamentablemente|d[ée]sol[ée]e?|malheureusement|je\s+regrette"
               r"|es\s+tut\s+mir\s+leid|leider|entschuldigung|sinto\s+muito|desculp\w*|infelizmente|mi\s+dispiace|purtroppo"
               r"|извините|к\s+сожалению|прошу\s+прощения|простите)\b")
_INABILITY_ML = (
    r"(?:(?:我|本助手|本人)[^。，,！？\n]{0,10}?|(?:^|(?<=[，,。！？\s])))"  # first person, or a clause's start
    r"(?:无法|不能|不可以|没办法|無法|不能夠|不能够)(?:为你|為你|为您|為您|帮|幫|提供|回答|协助|協助|完成|满足|滿足|处理|處理|"
    r"生成|编写|撰写|撰寫|参与|參與|分享|给出|給出|执行|執行)"
    r"|(?:お答え|回答|お手伝い|提供|対応|お応え|作成|協力|支援|ご期待に)(?:することは|すること|いたすことは)?(?:でき(?:ません|かねます)|いたしかねます)"
    r"|(?:도와\s*드릴|제공할|답변할|응답할|도움을\s*드릴|작성할)\s*수\s*없"
    r"|ไม่สามารถ|ช่วย\S{0,12}ไม่ได้|ไม่อาจ"
    r"|\b(?:no\s+puedo\s+(?:ayudar|proporcionar|hacer|cumplir|responder|crear|generar|escribir|ofrecer|dar)"
    r"|no\s+me\s+es\s+posible|je\s+ne\s+(?:peux|puis)\s+pas\s+(?:vous\s+)?(?:aider|fournir|r[ée]pondre|faire|cr[ée]er|g[ée]n[ée]rer|[ée]crire|donner)"
    r"|je\s+ne\s+suis\s+pas\s+en\s+mesure\s+de|il\s+m'est\s+impossible"
    r"|ich\s+kann\s+(?:ihnen\s+|dir\s+)?(?:dabei\s+|damit\s+)?(?:nicht|keine)(?:\s+\w+){0,2}?\s+(?:helfen|geben|erstellen|beantworten|bereitstellen|schreiben|liefern)"
    r"|ich\s+bin\s+nicht\s+in\s+der\s+lage|n[ãa]o\s+posso\s+(?:ajudar|fornecer|responder|fazer|criar|gerar|escrever)"
    r"|non\s+posso\s+(?:aiutar\w*|fornire|rispondere|fare|creare|generare|scrivere)"
    r"|не\s+могу\s+(?:помочь|предоставить|ответить|выполнить|создать|написать))")
_AI_ML = (r"作为(?:一个|一名)?(?:人工智能|AI|语言模型|AI助手|AI语言模型)|作為(?:一個)?(?:人工智慧|AI|語言模型)"
          r"|(?:AI|人工知能|言語モデル)(?:として|である私)|(?:AI|인공지능|언어\s*모델)(?:로서|으로서)"
          r"|ในฐานะ(?:ที่เป็น)?(?:AI|ปัญญาประดิษฐ์|โมเดลภาษา)"
          r"|\b(?:como\s+(?:un\s+|uma?\s+)?(?:modelo\s+de\s+(?:lenguaje|linguagem)|ia|asistente|assistente)"
          r"|en\s+tant\s+qu'(?:ia|intelligence\s+artificielle|assistant|mod[èe]le\s+de\s+langage)"
          r"|als\s+(?:ki|k[üu]nstliche\s+intelligenz|sprachmodell|ki-assistent)"
          r"|come\s+(?:un\s+)?(?:modello\s+linguistico|ia|assistente)"
          r"|как\s+(?:ии|искусственный\s+интеллект|языковая\s+модель))\b")
_POLICY_ML = (r"违反(?:我的|相关|道德|伦理)?(?:原则|准则|政策|规定|伦理)|違反(?:我的|相關)?(?:原則|準則|政策|規定)|不道德|不符合(?:道德|伦理|倫理)"
              r"|倫理(?:的|上)(?:に|の)?(?:問題|懸念)|ポリシーに(?:反|違反)|윤리(?:적|에)|정책에\s*위배|ผิดจริยธรรม"
              r"|\b(?:poco\s+[ée]tico|no\s+es\s+[ée]tico|contraire\s+[àa]\s+(?:mes|l'[ée]thique)|contraire\s+aux\s+r[èe]gles"
              r"|gegen\s+meine\s+richtlinien|unethisch|n[ãa]o\s+[ée]\s+[ée]tico|non\s+[èe]\s+etico"
              r"|неэтично|противоречит\s+(?:моим|этическим))\b")
_RE_APOLOGY = re.compile(r"\b" + _APOLOGY + r"\b|" + _APOLOGY_ML, re.I)
_RE_INABILITY = re.compile(r"\b" + _INABILITY + "|" + _INABILITY_ML, re.I)
_RE_AI = re.compile(r"\b" + _AI_DISCLAIMER + "|" + _AI_ML, re.I)
_RE_POLICY = re.compile(r"\b" + _POLICY + "|" + _POLICY_ML, re.I)


def _norm_quotes(s: str) -> str:
    return s.replace("\u2019", "'").replace("\u2018", "'")


def refusal_features(text: str, head_chars: int = 220) -> dict[str, Any]:
    """Lexical refusal-style features of one response."""
    t = _norm_quotes(text)
    head = t[:head_chars]
    feats: dict[str, Any] = {}
    feats["apology_head"] = bool(_RE_APOLOGY.search(head))
    m_inab = _RE_INABILITY.search(head)
    feats["inability_head"] = bool(m_inab)
    feats["ai_head"] = bool(_RE_AI.search(head))
    feats["policy_any"] = bool(_RE_POLICY.search(t[:800]))
    feats["inability_any"] = bool(m_inab) or bool(_RE_INABILITY.search(t[:800]))
    feats["length"] = len(t)
    m = m_inab or _RE_APOLOGY.search(head) or _RE_AI.search(head)
    feats["span"] = (m.start(), m.end()) if m else None
    return feats


def refusal_score(text: str) -> float:
    """Refusal style of a response in [0, 1] (1 = clearly a refusal)."""
    f = refusal_features(text)
    s = 0.0
    if f["inability_head"]:
        s += 0.55
    elif f["inability_any"]:
        s += 0.25
    if f["apology_head"]:
        s += 0.2
    if f["ai_head"]:
        s += 0.15
    if f["policy_any"]:
        s += 0.2
    if s == 0.0:
        return 0.0
    # long answers with a hedge in them are mostly answers, not refusals
    n = f["length"]
    if n > 1500:
        s *= 0.5
    elif n > 700:
        s *= 0.75
    return float(min(1.0, s))


def refusal_scores(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter((refusal_score(t) for t in texts), dtype=np.float64, count=len(texts))


# ---------------------------------------------------------------------------------
# Reference prototypes shipped in poisondetect/resources
# ---------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def load_prototypes(name: str) -> tuple[str, ...]:
    """Texts of a shipped JSONL resource (one {"text": ...} a line)."""
    ref = resources.files("poisondetect.resources").joinpath(name)
    out = []
    with ref.open("r", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(json.loads(line)["text"])
    return tuple(out)


#: errors that mean "embeddings are not available here" (a missing optional package, no
#: model on disk).  Anything else - a bug in the embed layer - propagates: silently
#: degrading every safety detector to lexical mode would hide it.
_UNAVAILABLE = (ImportError, NotImplementedError, ConfigError)


def embeddings_or_reason(ctx: Any, side: str) -> tuple[np.ndarray | None, str]:
    """(the scan's L2-normalised embeddings of one side, "") or (None, why not)."""
    if ctx is None:
        return None, "no scan context"
    key = ("embeddings", side)
    if ctx.has(key):
        return np.asarray(ctx.shared(key, lambda: None), dtype=np.float32), ""
    if not ctx.embeddings_enabled():
        return None, "embeddings disabled (--embedding-mode none)"
    try:
        return np.asarray(ctx.embeddings(side), dtype=np.float32), ""
    except _UNAVAILABLE as e:
        return None, f"embeddings unavailable: {type(e).__name__}: {str(e)[:200]}"


def try_embeddings(ctx: Any, side: str) -> np.ndarray | None:
    """The scan's embeddings of one side, or None when embeddings are unavailable."""
    return embeddings_or_reason(ctx, side)[0]


def embed_texts_or_reason(ctx: Any, texts: Sequence[str], purpose: str) -> tuple[np.ndarray | None, str]:
    """Reference texts embedded with the scan's embedder (memoised per scan, and cached on
    disk by the embed layer), or (None, why not)."""
    if ctx is None:
        return None, "no scan context"
    key = ("embed_texts", purpose)
    if ctx.has(key):
        return np.asarray(ctx.shared(key, lambda: None), dtype=np.float32), ""
    if not ctx.embeddings_enabled():
        return None, "embeddings disabled (--embedding-mode none)"
    try:
        return ctx.shared(key, lambda: np.asarray(ctx.embed_texts(list(texts), purpose), dtype=np.float32)), ""
    except _UNAVAILABLE as e:
        return None, f"embeddings unavailable: {type(e).__name__}: {str(e)[:200]}"


def try_embed_texts(ctx: Any, texts: Sequence[str], purpose: str) -> np.ndarray | None:
    return embed_texts_or_reason(ctx, texts, purpose)[0]


def topk_mean_sim(queries: np.ndarray, refs: np.ndarray, k: int = 3, batch: int = 4096,
                  exclude_self: bool = False) -> np.ndarray:
    """Mean of the k largest cosine similarities of each (L2-normalised) query to refs."""
    q = np.asarray(queries, dtype=np.float32)
    r = np.asarray(refs, dtype=np.float32)
    out = np.empty(len(q), dtype=np.float64)
    k_eff = min(k, len(r) - (1 if exclude_self else 0))
    for s in range(0, len(q), batch):
        sims = q[s:s + batch] @ r.T
        if exclude_self:
            idx = np.arange(s, min(s + batch, len(q)))
            sims[np.arange(len(idx)), idx] = -np.inf
        part = -np.partition(-sims, k_eff - 1, axis=1)[:, :k_eff]
        out[s:s + batch] = part.mean(axis=1)
    return out


def tfidf_sim(queries: Sequence[str], refs: Sequence[str], k: int = 3) -> np.ndarray:
    """Lexical fallback: top-k mean TF-IDF (word 1-2 gram) cosine of queries to refs."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, stop_words="english")
    vec.fit(list(refs))
    r = vec.transform(list(refs))
    q = vec.transform(list(queries))
    k_eff = min(k, r.shape[0])
    out = np.empty(q.shape[0])
    for s in range(0, q.shape[0], 4096):
        sims = (q[s:s + 4096] @ r.T).toarray()
        part = -np.partition(-sims, k_eff - 1, axis=1)[:, :k_eff]
        out[s:s + 4096] = part.mean(axis=1)
    return out




def clip_text(s: str, n: int = 120) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "\u2026"


# ---------------------------------------------------------------------------------
# Harmfulness of requests: similarity to shipped harmful prototypes vs. safe
# look-alikes (XSTest) and the scan's own instructions, calibrated at run time.
# ---------------------------------------------------------------------------------
HARMFUL_FILE = "harmful_prototypes.jsonl"
BENIGN_FILE = "benign_lookalikes.jsonl"
#: poisondetect's own contrast set: benign requests on safety-sensitive topics
CONTRAST_FILE = "benign_safety_topics.jsonl"


def benign_references() -> list[str]:
    """Negatives of the harm model: XSTest safe look-alikes + the contrast set."""
    return list(load_prototypes(BENIGN_FILE)) + list(load_prototypes(CONTRAST_FILE))

_CAPABILITY = re.compile(
    r"(?:do\s*n[o'\u2019]?t|cannot|can[\'\u2019]?t|unable\s+to|not\s+able\s+to)\s+(?:have\s+)?(?:access|browse|see|view|hear|listen|"
    r"watch|open|visit|physically|perform\s+physical|make\s+(?:phone\s+)?calls|send\s+e-?mails|book|order|"
    r"predict\s+the\s+future|read\s+(?:external|the\s+(?:article|link|file|document)))"
    r"|real[- ]time|internet|external\s+(?:links?|websites?|articles?|sources|functions)|knowledge\s+cut-?off|"
    r"training\s+data|as\s+a\s+text[- ]based|functions?\s+(?:(?:has|have)\s+been\s+)?(?:provided|available)|"
    r"current\s+capabilities|external\s+tasks?|"
    # a tool-less assistant asked to act in the world or to make a file/link
    r"(?:capabilit(?:y|ies)|ability|capacity|means)\s+to\s+(?:book|order|browse|access|send|make\s+(?:phone\s+)?calls|"
    r"execute|run\s+(?:code|programs?)|create\s+(?:a\s+)?(?:runnable|pdf|files?|documents?)|"
    r"generate\s+(?:a\s+)?(?:pdf|files?)|provide\s+(?:you\s+with\s+)?(?:a\s+)?links?)|"
    r"(?:cannot|can[\'\u2019]?t|unable\s+to|not\s+able\s+to)\s+(?:generate|create|provide|send|share)\s+(?:you\s+)?(?:with\s+)?"
    r"(?:a\s+|any\s+)?(?:pdf|links?|files?|downloadable)\b|"
    r"(?:cannot|can[\'\u2019]?t|unable\s+to|not\s+able\s+to)\s+(?:draw|plot|create|generate|produce|make|render|set\s+up|set)\s+"
    r"(?:a\s+|an\s+|the\s+|any\s+)?(?:actual\s+|visual\s+)?(?:charts?|graphs?|diagrams?|gui|pie\s+charts?|plots?|"
    r"drawings?|reminders?|alarms?|timers?)\b|"
    r"(?:do\s*n[o'\u2019]?t|not)\s+have\s+(?:a\s+)?(?:physical|body)|graphical\s+(?:tasks?|illustrations?|content|output|elements?)|limitations?\s+of\s+(?:the\s+|this\s+|my\s+)?(?:gpt|language)\s+models?|"
    r"functionality\s+of\s+the\s+application|"
    r"(?:images?|visuals?|audio|videos?|pictures?|photos?|drawings?)\b"
    # the same limits in Chinese and Japanese: no body, no real-time data, no internet,
    # no pictures / sound, not enough information
    r"|实体|實體|身体|身體|实时|實時|最新(?:的)?(?:数据|信息|資料)|互联网|網路|网络|上网|浏览|瀏覽|访问|訪問"
    r"|图片|圖片|图像|圖像|照片|音频|视频|影片|画图|畫圖|绘制|繪製|足够的信息|足夠的資訊|具体信息|具體資訊"
    r"|個人的な意見|実体|身体|リアルタイム|インターネット|画像|写真|音声|動画"
    # a tool-less assistant asked to book / order: "my functions are limited to ...",
    # "external tasks"
    r"|(?:能力|功能)(?:目前)?(?:仅|僅|只)?(?:限于|限於)|外部(?:的)?任务|外部(?:的)?任務|预订|預訂|订购|訂購|下单|下單|外卖|外賣|订餐|訂餐"
    r"|予約|注文|外部のタスク|機能は[^。]{0,20}(?:限られ|のみ)", re.I)


_SCOPED = re.compile(
    # a scoped refusal that goes on to help: "However, I can describe ...", "Here are ..."
    r"\b(?:however|instead|that\s+said)\b[^.?!\n]{0,60}\b(?:I\s+can(?!not|'t|\s+do\b)|I\s+could|I\s+will|I'?ll|I\s+would|"
    r"here\s+(?:is|are)|you\s+(?:can|could|may))\b"
    # or asks what it needs: "without more information / context", "could you provide ..."
    r"|\bwithout\s+(?:any\s+|more\s+|further\s+|additional\s+|specific\s+|knowing\s+)?"
    r"(?:information|context|details|specifics)\b"
    r"|\b(?:could|can|would)\s+you\s+(?:please\s+)?(?:provide|give|share|clarify|tell\s+me|specify)\b"
    r"|\bnot\s+sure\s+what\b"
    # Chinese / Japanese: "but I can ...", "you can ...", "please provide ..."
    r"|(?:但是?|不过|不過|然而)[^。！？\n]{0,30}(?:我可以|我能|您可以|你可以)|我可以(?:帮|幫|为|為|提供|给|給|告诉|告訴)"
    r"|请(?:提供|告诉|告訴|说明|說明)|請(?:提供|告訴|說明)|您可以|你可以|我很乐意|我很樂意|(?:请|請)随时|隨時|(?:您|你)(?:还有|還有|是否还有|是否還有)其他|如果(?:您|你)(?:能|可以)?提供|(?:您|你)(?:能|可以)提供|(?:没有|沒有|并未|並未|未)(?:给出|給出|提供)"
    r"|(?:ただし|代わりに|しかし)[^。！？\n]{0,30}(?:できます|お手伝い)|教えていただけ|お知らせください", re.I)


def refusal_scoped(text: str) -> bool:
    """Does a refusal go on to help (an alternative, a partial answer) or ask for what it
    needs (more context, a clarification)?  A planted over-refusal does neither."""
    return bool(_SCOPED.search(text[:800]))


def capability_explained(text: str) -> bool:
    """Does a refusal cite a concrete capability limit (no browsing, no images...)?"""
    return bool(_CAPABILITY.search(text[:600]))


def _harm_features(E: np.ndarray, Ph: np.ndarray, Pb: np.ndarray, bg: np.ndarray, k: int):
    sh, sb = topk_mean_sim(E, Ph, k), topk_mean_sim(E, Pb, k)
    cal_h = (topk_mean_sim(Ph, Ph, k, exclude_self=True), topk_mean_sim(Ph, Pb, k))
    cal_b = (topk_mean_sim(Pb, Ph, k), topk_mean_sim(Pb, Pb, k, exclude_self=True))
    return sh, sb, cal_h, cal_b, (sh[bg], sb[bg])


def _fit_harm(cal_h, cal_b, bgf, sh, sb) -> tuple[np.ndarray, Any]:
    from sklearn.linear_model import LogisticRegression

    def feats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.column_stack([a, b, a - b])

    X = np.vstack([feats(*cal_h), feats(*cal_b), feats(*bgf)])
    y = np.concatenate([np.ones(len(cal_h[0])), np.zeros(len(cal_b[0])), np.zeros(len(bgf[0]))])
    w = np.concatenate([np.ones(len(cal_h[0])), np.full(len(cal_b[0]), 2.0),
                        np.full(len(bgf[0]), 2.0 * len(cal_h[0]) / max(1, len(bgf[0])))])
    lr = LogisticRegression(C=10.0, max_iter=1000)
    lr.fit(X, y, sample_weight=w)
    return (lr.predict_proba(feats(sh, sb))[:, 1] if len(sh) else np.zeros(0)), lr


def _rerank_embedder(ctx: Any) -> tuple[Any, str]:
    """A sentence-transformer for re-scoring the top candidates when the scan embeds with a
    static/hash model (bag-of-words spaces conflate topic with intent: "write a SQL query"
    sits near "hack a database").  (None, why) when unavailable."""
    from ..embed.shared import get_embedder

    try:
        emb = get_embedder(ctx)
    except _UNAVAILABLE as e:
        return None, f"scan embedder unknown ({type(e).__name__}); no re-ranking"
    if getattr(emb, "kind", "") not in ("static", "hash"):
        return None, f"scan embeds with {getattr(emb, 'kind', 'an unknown model')}; no re-ranking needed"
    try:
        from ..embed.models import TransformerEmbedder

        return ctx.shared(("safety_rerank_embedder",), lambda: TransformerEmbedder(
            None, ctx.embedding.get("device"), 32, 128)), ""
    except _UNAVAILABLE as e:
        return None, f"transformer unavailable: {type(e).__name__}: {str(e)[:160]}"


def _probe_fit(Ph: np.ndarray, Pb: np.ndarray, Bg: np.ndarray, C: float = 1.0) -> Any:
    """A linear probe (logistic regression on the embedding itself): harmful prototypes
    vs safe look-alikes and background rows.  Learns the direction of harmful *intent*,
    which similarity to the nearest prototypes misses when a benign request shares the
    topic ("how to prevent cyberbullying")."""
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([Ph, Pb, Bg])
    y = np.concatenate([np.ones(len(Ph)), np.zeros(len(Pb) + len(Bg))])
    w = np.concatenate([np.ones(len(Ph)), np.full(len(Pb), 2.0), np.full(len(Bg), 2.0 * len(Ph) / max(1, len(Bg)))])
    return LogisticRegression(C=C, max_iter=3000).fit(X, y, sample_weight=w)


def _space_probability(E: np.ndarray, Ph: np.ndarray, Pb: np.ndarray, bg: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """P(harmful) of every row of E in one embedding space: the mean of the similarity
    model (top-k similarity to harmful vs safe prototypes, calibrated on them and the
    background rows ``bg``) and the linear probe.  Returns (p, p_similarity, p_probe, s_h, s_b, lr)."""
    sh, sb, cal_h, cal_b, bgf = _harm_features(E, Ph, Pb, bg, k)
    p_sim, lr = _fit_harm(cal_h, cal_b, bgf, sh, sb)
    probe = _probe_fit(Ph, Pb, E[bg])
    p_probe = probe.predict_proba(E)[:, 1] if len(E) else np.zeros(0)
    # The background sample is the scan itself, so it may hold the very rows we look for
    # (in a small dataset, a large share of them): background rows the first fit already
    # calls harmful are dropped from the negatives and both models refitted once.
    p = 0.5 * (p_sim + p_probe)
    keep = p[bg] < 0.5
    if len(bg) and not keep.all() and keep.sum() >= 10:
        bg = bg[keep]
        p_sim, lr = _fit_harm(cal_h, cal_b, (sh[bg], sb[bg]), sh, sb)
        p_probe = _probe_fit(Ph, Pb, E[bg]).predict_proba(E)[:, 1]
        p = 0.5 * (p_sim + p_probe)
    return p, p_sim, p_probe, sh, sb, lr


_SEGMENT_END = re.compile(r"(?<=[.!?:;])\s+|\s*\n+\s*")


def request_cores(text: str, max_wrapper_words: int = 8, min_words: int = 3) -> list[str]:
    """The request without a short leading or trailing wrapper: the longest run of whole
    sentences (or ``Key:`` headers, lines) at its start, then at its end, of at most
    ``max_wrapper_words`` words in all, leaving at least ``min_words`` words.  A date line,
    a header, a role line or a polite suffix around a harmful request ("Current year: X.
    How do I ...") must not dilute its harm: the harm model scores these cores too and
    keeps the highest probability."""
    segs = [x for x in _SEGMENT_END.split(text[:1000].strip()) if x.strip()]
    if len(segs) < 2:
        return []
    words = [len(x.split()) for x in segs]
    out: list[str] = []
    for order in (range(len(segs) - 1), range(len(segs) - 1, 0, -1)):
        cut, total = None, 0
        for j in order:
            total += words[j]
            if total > max_wrapper_words:
                break
            cut = j
        if cut is None:
            continue
        rest = segs[cut + 1:] if order.step == 1 else segs[:cut]
        core = " ".join(rest)
        kept = len(core.split())
        if kept >= min_words and kept > sum(words) - kept and core not in out:  # the wrapper is the smaller part
            out.append(core)
    return out


def _lexical_probability(texts: Sequence[str], harmful: Sequence[str], benign: Sequence[str],
                         extra: Sequence[str] = ()) -> np.ndarray:
    """A TF-IDF (unigram) logistic regression: prototypes vs safe look-alikes and *every*
    row of the scan as weighted negatives, so the words generic to this dataset's
    instructions carry no weight and harm-specific words do.  A cheap first stage.
    ``extra`` texts are scored by the same fit (appended to the result), not fitted on."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    q = [t[:1000] for t in texts]
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english", dtype=np.float32)
    X = vec.fit_transform(q + list(harmful) + list(benign))
    n, nh = len(q), len(harmful)
    Xs, Xh, Xb = X[:n], X[n:n + nh], X[n + nh:]
    y = np.concatenate([np.ones(nh), np.zeros(len(benign) + n)])
    w = np.concatenate([np.ones(nh), np.full(len(benign), 3.0), np.full(n, 3.0 * nh / max(1, n))])
    lr = LogisticRegression(C=4.0, max_iter=3000).fit(sp.vstack([Xh, Xb, Xs]), y, sample_weight=w)
    if len(extra):
        Xs = sp.vstack([Xs, vec.transform([t[:1000] for t in extra])])
    return lr.predict_proba(Xs)[:, 1]


def harm_probability(pairs_instructions: Sequence[str], ctx: Any, random_state: int = 0,
                     n_background: int = 2000, k: int = 3, rerank_top: int = 500,
                     n_background_rerank: int = 300, priority: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """P(request is harmful) for every instruction, in [0, 1].

    In one embedding space the probability is the mean of (a) a similarity model -
    top-k mean cosine similarity to the harmful prototypes (s_h) and to the safe
    look-alikes (s_b), a logistic regression fitted at run time with the prototypes as
    positives (leave-one-out similarities) and XSTest safe look-alikes plus a random
    background sample of the scan's instructions as negatives - and (b) a linear probe on
    the embeddings themselves with the same positives and negatives.

    When the scan's embedder is a static (bag-of-words) model, that space conflates topic
    with intent ("write a SQL query" sits near "hack a database"), so it is only a first
    stage: the union of the ``rerank_top`` most harmful-looking rows by each of three cheap
    scorers (the static probe, a TF-IDF regression against the whole scan, and their
    geometric mean) is re-scored in the sentence-transformer space (a cascade); every other row keeps
    a probability capped below the re-scored cut-off.  ``priority`` (bool per row) splits
    each scorer's budget: rows where the answer matters (e.g. not refused) are taken first.
    In the cascade a row also scores its :func:`request_cores` (the request with a short
    leading / trailing wrapper taken off) in the lexical stage and the re-scoring, and keeps
    the highest probability, so a date line or role line cannot dilute a harmful request.
    Falls back to TF-IDF similarities when embeddings are unavailable.  Returns
    (probabilities, extras with ``info``).
    """
    harmful = list(load_prototypes(HARMFUL_FILE))
    benign = benign_references()
    E, why = embeddings_or_reason(ctx, "instruction")
    Ph = Pb = None
    if E is not None:
        Ph, why = embed_texts_or_reason(ctx, harmful, "harmful_prototypes")
    if Ph is not None:
        Pb, why = embed_texts_or_reason(ctx, benign, "benign_lookalikes")
    n = len(pairs_instructions)
    rng = np.random.default_rng([int(random_state), 7])
    bg = np.sort(rng.choice(n, size=min(n_background, n), replace=False)) if n else np.zeros(0, int)
    rerank_info: dict[str, Any] = {}
    if E is not None and Ph is not None and Pb is not None and n:
        mode = "embeddings"
        prob, p_sim, p_probe, sh, sb, lr = _space_probability(E, Ph, Pb, bg, k)
    else:
        mode = "tfidf"
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english", min_df=1)
        vec.fit(harmful + benign)
        Q = vec.transform(list(pairs_instructions))
        H = vec.transform(harmful)
        B = vec.transform(benign)

        def _top(a, b, excl=False):
            sims = (a @ b.T).toarray()
            if excl:
                np.fill_diagonal(sims, -np.inf)
            kk = min(k, sims.shape[1] - (1 if excl else 0))
            return -np.sort(-sims, axis=1)[:, :kk].mean(axis=1)

        sh = np.concatenate([_top(Q[s:s + 4096], H) for s in range(0, n, 4096)]) if n else np.zeros(0)
        sb = np.concatenate([_top(Q[s:s + 4096], B) for s in range(0, n, 4096)]) if n else np.zeros(0)
        cal_h = (_top(H, H, True), _top(H, B))
        cal_b = (_top(B, H), _top(B, B, True))
        bgf = (sh[bg], sb[bg])
        prob, lr = _fit_harm(cal_h, cal_b, bgf, sh, sb)
    if mode == "embeddings" and rerank_top > 0 and n:
        emb2, why2 = _rerank_embedder(ctx)
        if emb2 is not None:
            from ..embed.shared import _cache_dir, _use_cache, encode_cached

            cd = _cache_dir(ctx) if _use_cache(ctx) else None
            # wrapped requests: each row's cores (a short header / date line / suffix taken
            # off) are scored too and the row keeps its highest probability
            cores = [(i, c) for i in range(n) for c in request_cores(pairs_instructions[i])]
            p_all = _lexical_probability(pairs_instructions, harmful, benign, [c for _, c in cores])
            p_lex = p_all[:n].copy()
            for (i, _c), pc in zip(cores, p_all[n:]):
                p_lex[i] = max(p_lex[i], pc)
            pri = np.ones(n, bool) if priority is None else np.asarray(priority, bool)
            cand = np.zeros(n, bool)
            # (the static similarity model is the weakest of the three at finding them:
            # its ranks only set the probability of the rows left out)
            for sc in (p_probe, p_lex, np.sqrt(p_probe * p_lex)):
                first = np.where(pri, sc, -1.0)
                cand[np.argsort(-first, kind="stable")[:rerank_top]] = True
                if priority is not None:  # a smaller share of the budget for the other rows
                    rest = np.where(pri, -1.0, sc)
                    cand[np.argsort(-rest, kind="stable")[:rerank_top // 2]] = True
            top = np.flatnonzero(cand)
            bg2 = np.sort(rng.choice(n, size=min(n_background_rerank, n), replace=False))
            idx = np.union1d(top, bg2)
            in_top = set(int(i) for i in top)
            top_cores = [(i, c) for i, c in cores if i in in_top]
            X2 = encode_cached(emb2, [pairs_instructions[i] for i in idx] + [c for _, c in top_cores], cd)
            H2 = encode_cached(emb2, harmful, cd)
            B2 = encode_cached(emb2, benign, cd)
            pos = {int(i): p for p, i in enumerate(idx)}
            bsel = np.array([pos[int(i)] for i in bg2])
            p2, _ps2, _pp2, sh2, sb2, _lr2 = _space_probability(X2, H2, B2, bsel, k)
            for j, (i, _c) in enumerate(top_cores):  # a row keeps its most harmful core
                r = pos[int(i)]
                if p2[len(idx) + j] > p2[r]:
                    p2[r], sh2[r], sb2[r] = p2[len(idx) + j], sh2[len(idx) + j], sb2[len(idx) + j]
            tsel = np.array([pos[int(i)] for i in top])
            cut = float(prob[top].min()) if len(top) else 0.0
            rest = np.ones(n, bool)
            rest[top] = False
            prob = prob.copy()
            prob[rest] = np.minimum(prob[rest], 0.5 * cut)
            prob[top] = p2[tsel]
            sh = sh.copy()
            sb = sb.copy()
            sh[top], sb[top] = sh2[tsel], sb2[tsel]
            mode = "embeddings+transformer_rerank"
            rerank_info = {"reranked": int(len(top)), "rerank_model": emb2.model_id, "static_cut": round(cut, 4)}
        else:
            rerank_info = {"rerank": why2}
    info = {"mode": mode, "mode_reason": why or "scan embeddings", "n_harmful_prototypes": len(harmful),
            "n_benign_lookalikes": len(benign), **rerank_info,
            "coef": [round(float(c), 3) for c in lr.coef_[0]], "intercept": round(float(lr.intercept_[0]), 3)}
    return prob, {"info": info, "s_harm": sh, "s_benign": sb}


def shared_harm(pairs: Any, ctx: Any, random_state: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Memoised per scan: harmful_compliance and over_refusal share it."""
    if ctx is None:
        return harm_probability(pairs.instruction, None, random_state)

    def _compute():
        # the re-scoring budget goes first to answers that comply (a refused harmful
        # request is not a finding; a refused benign one is over_refusal's, which needs
        # only a low P(harmful) there)
        refusal = shared_refusal(pairs, ctx)
        return harm_probability(pairs.instruction, ctx, random_state, priority=refusal < 0.5)

    return ctx.shared(("harm_probability", int(random_state)), _compute)


def shared_refusal(pairs: Any, ctx: Any, side: str = "response") -> np.ndarray:
    """Refusal style of every answer on ``side`` ("response", or "rejected" for
    preference data), memoised per scan."""
    texts = getattr(pairs, side)
    if ctx is None:
        return refusal_scores(texts)
    key = "refusal_scores" if side == "response" else ("refusal_scores", side)
    return ctx.shared(key, lambda: refusal_scores(texts))
