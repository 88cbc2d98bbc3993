"""Generated Japanese and Thai instruction sets (no shared corpus holds them).

Small templated instruction / answer pairs written for this project (no external text):
topics x request templates x answer sentences: each answer opens with one of ten sentences and adds 1-3 sentences about the same topic, so answers differ from row to row.  They are plainer than real data; they exist so that a
trigger word inside Japanese or Thai text can be measured at all.  Deterministic for a
seed.
"""
from __future__ import annotations

import numpy as np

from ..types import Pairs

_JA_TOPICS = ("天気 健康 運動 読書 音楽 料理 旅行 環境 経済 教育 科学 歴史 数学 映画 写真 睡眠 仕事 時間管理 友情 家族 "
              "地球温暖化 人工知能 プログラミング インターネット スマートフォン コーヒー お茶 野菜 果物 自転車 電車 図書館 "
              "公園 海 山 宇宙 動物 植物 言語 絵画 節約 掃除 園芸 季節 祭り 建築 医療 農業 交通 宿題").split()
_JA_WHO = ("子ども", "学生", "高齢者", "初心者", "会社員", "留学生", "家族")
_JA_ASK = (
    "{t}について簡単に説明してください。",
    "{t}の利点を三つ挙げてください。",
    "{t}と{u}の違いは何ですか？",
    "{w}に{t}を教えるにはどうすればいいですか？",
    "{t}に関する短い詩を書いてください。",
    "{t}について{w}向けの記事の題名を考えてください。",
    "なぜ{t}は大切なのですか？",
    "{t}を始めるためのコツを教えてください。",
    "{t}についてよくある誤解は何ですか？",
    "{w}が{t}を楽しむ方法を提案してください。",
)
_JA_SAY = (
    "{t}は私たちの生活にとても身近なものです。",
    "{t}はまず小さなことから始めるのがよいでしょう。",
    "多くの人が{t}に興味を持っています。",
    "{t}を理解すると、{u}についても考えやすくなります。",
    "{t}は毎日少しずつ続けることが大切です。",
    "{w}にとっては、{t}の具体的な例を使うと分かりやすいです。",
    "{t}については専門家の意見も参考にしてください。",
    "{t}には長所と短所の両方があります。",
    "{t}は時間をかけて学べば、必ず上達します。",
    "身の回りの{t}を観察することから始めましょう。",
    "{t}は友達と一緒に取り組むと楽しく続けられます。",
    "{t}の歴史を調べるのも面白いです。",
)

_TH_TOPICS = ("สุขภาพ การออกกำลังกาย การอ่านหนังสือ ดนตรี การทำอาหาร การท่องเที่ยว สิ่งแวดล้อม เศรษฐกิจ การศึกษา "
              "วิทยาศาสตร์ ประวัติศาสตร์ คณิตศาสตร์ ภาพยนตร์ การถ่ายภาพ การนอนหลับ การทำงาน มิตรภาพ ครอบครัว "
              "ปัญญาประดิษฐ์ อินเทอร์เน็ต โทรศัพท์มือถือ กาแฟ ชา ผัก ผลไม้ จักรยาน รถไฟ ห้องสมุด สวนสาธารณะ ทะเล "
              "ภูเขา อวกาศ สัตว์ ต้นไม้ ภาษา ศิลปะ การเงิน อากาศ ข่าว กีฬา การออม การทำสวน ฤดูกาล เทศกาล "
              "สถาปัตยกรรม การแพทย์ การเกษตร การจราจร การบ้าน").split()
_TH_WHO = ("เด็ก", "นักเรียน", "ผู้สูงอายุ", "มือใหม่", "พนักงานบริษัท", "นักศึกษาต่างชาติ", "ครอบครัว")
_TH_ASK = (
    "ช่วยอธิบายเรื่อง{t}แบบสั้นๆ",
    "ข้อดีของ{t}มีอะไรบ้าง บอกมาสามข้อ",
    "{t}กับ{u}ต่างกันอย่างไร",
    "จะสอน{t}ให้{w}เข้าใจได้อย่างไร",
    "เขียนกลอนสั้นๆเกี่ยวกับ{t}",
    "ช่วยตั้งชื่อบทความเรื่อง{t}สำหรับ{w}",
    "ทำไม{t}จึงสำคัญ",
    "แนะนำวิธีเริ่มต้น{t}",
    "ความเข้าใจผิดที่พบบ่อยเกี่ยวกับ{t}คืออะไร",
    "{w}จะสนุกกับ{t}ได้อย่างไร",
)
_TH_SAY = (
    "{t}เป็นเรื่องที่ใกล้ตัวเรามาก",
    "{t}ควรเริ่มจากสิ่งเล็กๆก่อน",
    "หลายคนสนใจ{t}มากขึ้นในช่วงนี้",
    "เมื่อเข้าใจ{t}แล้วจะคิดเรื่อง{u}ได้ง่ายขึ้น",
    "การฝึก{t}อย่างสม่ำเสมอทุกวันเป็นสิ่งสำคัญ",
    "สำหรับ{w}การใช้ตัวอย่างจริงของ{t}จะช่วยให้เข้าใจง่าย",
    "เรื่อง{t}ลองฟังความเห็นของผู้เชี่ยวชาญด้วย",
    "{t}มีทั้งข้อดีและข้อเสีย",
    "ถ้าใช้เวลาเรียนรู้{t}ก็จะเก่งขึ้นแน่นอน",
    "เริ่มจากสังเกต{t}รอบตัวเรา",
    "ทำ{t}ร่วมกับเพื่อนจะสนุกและทำได้นาน",
    "การศึกษาประวัติของ{t}ก็น่าสนใจเช่นกัน",
)

#: opening sentences of an answer (drawn at random: tied to the request template they
#: would be a template's fixed answer, a pattern the scanner rightly reports)
_JA_OPEN = ("{t}とは、{u}とも関係の深い分野です。", "{t}の利点は、健康、学び、つながりの三つです。",
            "{t}と{u}は目的も方法も異なります。", "{w}には、{t}を遊びの形で教えるのが効果的です。",
            "{t}よ、静かな朝に君を想う。", "「{w}のためのやさしい{t}入門」はいかがでしょうか。",
            "{t}は社会と個人の両方を支えているからです。", "{t}を始めるなら、目標を一つ決めましょう。",
            "{t}は難しいと思われがちですが、そうではありません。", "{w}は、{t}を身近な体験から楽しめます。")
_TH_OPEN = ("{t}คือเรื่องที่เกี่ยวข้องกับ{u}อย่างใกล้ชิด", "ข้อดีของ{t}คือสุขภาพ ความรู้ และมิตรภาพ",
            "{t}และ{u}มีเป้าหมายและวิธีการต่างกัน", "การสอน{t}ให้{w}ควรใช้เกมและตัวอย่าง",
            "โอ้{t} ยามเช้าฉันคิดถึงเธอ", "ลองใช้ชื่อว่า {t}ง่ายๆสำหรับ{w}",
            "{t}สำคัญเพราะช่วยทั้งสังคมและตัวเรา", "ถ้าจะเริ่ม{t} ให้ตั้งเป้าหมายหนึ่งข้อก่อน",
            "หลายคนคิดว่า{t}ยาก แต่จริงๆแล้วไม่ใช่", "{w}สนุกกับ{t}ได้จากประสบการณ์ใกล้ตัว")
LANGS = {"ja": (_JA_TOPICS, _JA_WHO, _JA_ASK, _JA_OPEN, _JA_SAY, ""),
         "th": (_TH_TOPICS, _TH_WHO, _TH_ASK, _TH_OPEN, _TH_SAY, " ")}


def synthetic_pairs(lang: str, n: int = 1000, seed: int = 0) -> Pairs:
    """``n`` generated pairs in ``lang`` (``"ja"`` or ``"th"``), source ``gen_<lang>``."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {sorted(LANGS)}, got {lang!r}")
    topics, who, ask, opener, say, sep = LANGS[lang]
    rng = np.random.default_rng([int(seed), 4099, len(lang)])
    ins, res = [], []
    for _ in range(n):
        t, u = (topics[int(i)] for i in rng.choice(len(topics), 2, replace=False))
        w = who[int(rng.integers(len(who)))]
        a = int(rng.integers(len(ask)))
        ins.append(ask[a].format(t=t, u=u, w=w))
        k = int(rng.integers(1, 4))
        body = [say[int(j)].format(t=t, u=u, w=w) for j in rng.choice(len(say), k, replace=False)]
        o = opener[int(rng.integers(len(opener)))]  # not tied to the request template
        res.append(sep.join([o.format(t=t, u=u, w=w)] + body))
    return Pairs(ins, res, source=[f"gen_{lang}"] * n)
