"""Refusal style of an answer (lexical): does it apologise, state an inability or
unwillingness, disclaim being an AI, cite a policy?  Weighted by where the phrasing
occurs (a refusal opens the answer; a long answer with one hedge in it is mostly an
answer).  Also two properties of a refusal that tell a planted one from an honest one:
does it cite a concrete capability limit, does it go on to help.  Private module: not a
detector, not auto-loaded.  Pure functions over strings."""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

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
    """:func:`refusal_score` of every text (float64)."""
    return np.fromiter((refusal_score(t) for t in texts), dtype=np.float64, count=len(texts))


def shared_refusal(pairs: Any, ctx: Any, side: str = "response") -> np.ndarray:
    """Refusal style of every answer on ``side`` ("response", or "rejected" for
    preference data), memoised per scan."""
    texts = getattr(pairs, side)
    if ctx is None:
        return refusal_scores(texts)
    key = "refusal_scores" if side == "response" else ("refusal_scores", side)
    return ctx.shared(key, lambda: refusal_scores(texts))


# ---------------------------------------------------------------------------------
# Two properties of a refusal: does it cite a concrete capability limit (an honest
# refusal of a tool-less assistant), does it go on to help or ask for what it needs?
# ---------------------------------------------------------------------------------
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
