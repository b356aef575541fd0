"""The recogniser with the real bundled model: accuracy on the shipped test set, entities,
bad input, and shared batches."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.nlu import FALLBACK, Recognizer, evaluate

TEST_SET = Path(__file__).parent / "data" / "nlu_test.jsonl"
ROOT = Path(__file__).resolve().parent.parent


async def test_accuracy_on_the_shipped_test_set(recognizer: Recognizer):
    report = await evaluate(recognizer, TEST_SET)
    assert report.per_language["en"]["accuracy"] >= 0.92, report.to_dict()
    assert report.per_language["zh-TW"]["accuracy"] >= 0.88, report.to_dict()
    assert report.per_intent[FALLBACK]["accuracy"] >= 0.8, report.per_intent[FALLBACK]


@pytest.mark.parametrize(
    "text, intent, entities",
    [
        ("Do you have the runners in size 9?", "check_stock", {"size": "9", "category": "shoes"}),
        ("is the midnight wrap dress available in other sizes?", "check_stock", {"product": "DRS-MIDNIGHT"}),
        ("add two pairs of running socks", "add_to_cart", {"quantity": 2, "category": "socks"}),
        (
            "add 2 aero runners size 10 in black",
            "add_to_cart",
            {"quantity": 2, "size": "10", "colour": "black", "product": "RUN-AERO"},
        ),
        ("where is my order #1002?", "order_status", {"order_number": 1002}),
        ("cancel order 1003 please", "cancel_order", {"order_number": 1003}),
        ("show me gray hoodies in large", "product_search", {"colour": "grey", "size": "L", "category": "hoodies"}),
        ("my email is ana.li+shop@example.com", None, {"email": "ana.li+shop@example.com"}),
        ("how long does shipping take", "faq", {"faq": "shipping"}),
        ("STOP", "opt_out", {}),
        ("有沒有9號的黑色跑鞋？", "check_stock", {"size": "9", "colour": "black", "category": "shoes"}),
        ("幫我把兩件中號的白色T恤加入購物車", "add_to_cart", {"quantity": 2, "size": "M", "colour": "white"}),
        ("我的訂單1002到哪了", "order_status", {"order_number": 1002}),
        ("is the swift stride available in US 9", "check_stock", {"size": "9", "product": "RUN-SWIFT"}),
        ("do you have the mom jeans in a 32 waist", None, {"size": "32", "quantity": None}),
        ("洋裝有M號嗎", None, {"size": "M"}),
        ("外套還有XL嗎", None, {"size": "XL"}),
        ("有粉紅色的嗎", None, {"colour": "pink"}),
        ("跑步襪三雙組還有貨嗎", None, {"quantity": None, "product": "SOCK-RUN"}),
    ],
)
async def test_intents_and_entities(recognizer: Recognizer, text, intent, entities):
    result = await recognizer.recognize(text)
    if intent:
        assert result.name == intent, result
    for key, value in entities.items():
        assert getattr(result.entities, key) == value, (key, result.entities)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀🎉🔥",
        "\u200b\u200c\u200d",
        "a" * 10_000,
        "שלום עולם",
        "مرحبا",
        "hello 你好 мир",
        "\u202eevil\u202c",
        "\x00\x01",
        "1234567890" * 50,
    ],
)
async def test_bad_input_never_raises(recognizer: Recognizer, text):
    result = await recognizer.recognize(text)
    assert result.name == FALLBACK or result.confidence >= recognizer.threshold


async def test_out_of_scope_goes_to_fallback(recognizer: Recognizer):
    for text in ("what's the weather tomorrow", "who won the football game last night"):
        assert (await recognizer.recognize(text)).name == FALLBACK, text


async def test_concurrent_texts_share_model_calls(recognizer: Recognizer):
    calls = []
    model = recognizer.model
    original = model.encode

    def counting(texts, **kwargs):  # counts calls into the real model, which still runs
        calls.append(len(texts))
        return original(texts, **kwargs)

    model.encode = counting
    try:
        texts = [f"do you have the aero runner in size {n % 5 + 7}" for n in range(32)]
        results = await asyncio.gather(*(recognizer.recognize(t) for t in texts))
    finally:
        model.encode = original
    assert all(r.name == "check_stock" for r in results)
    assert sum(calls) == 32 and len(calls) <= 4, calls


def cli_env(tmp_path: Path, nlu_cache_dir: Path) -> dict[str, str]:
    """A command line's environment: its own store, the run's fit cache (filled by the session's
    recogniser, so the command loads rather than fits)."""
    import os

    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "HOME": str(tmp_path),
        "NLU_CACHE_DIR": str(nlu_cache_dir),
    }


def test_cli_parse_and_eval(tmp_path, recognizer, nlu_cache_dir):
    env = cli_env(tmp_path, nlu_cache_dir)
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "parse", "where is my order 1001"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["intent"] == "order_status" and parsed["entities"]["order_number"] == 1001
    small = tmp_path / "small.jsonl"
    small.write_text(
        '{"text": "hello there", "intent": "greet"}\n{"text": "where is my parcel", "intent": "order_status", "lang": "en"}\n'
    )
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "eval", str(small), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 <= report["accuracy"] <= 1 and "greet" in report["per_intent"] and "en" in report["per_language"]


def test_cli_parse_file_from_standard_input(tmp_path, recognizer, nlu_cache_dir):
    lines = "where is my order 1001\n\n   \n有沒有9號的黑色跑鞋？\nhello\n"
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "parse", "--file", "-"],
        input=lines.encode("utf-8"),
        cwd=ROOT,
        env=cli_env(tmp_path, nlu_cache_dir),
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["where is my order 1001", "有沒有9號的黑色跑鞋？", "hello"]
    assert all(set(r) == {"text", "intent", "confidence", "entities"} for r in rows)
    assert [r["intent"] for r in rows] == ["order_status", "check_stock", "greet"]
    assert rows[0]["entities"]["order_number"] == 1001 and rows[1]["entities"]["size"] == "9"
    assert b"nlu cache used" in out.stderr  # the session's recogniser filled the cache


def test_cli_parse_needs_text_or_file(tmp_path, nlu_cache_dir):
    for args in ([], ["hello", "--file", "-"]):
        out = subprocess.run(
            [sys.executable, "app.py", "nlu", "parse", *args],
            cwd=ROOT,
            env=cli_env(tmp_path, nlu_cache_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and "either TEXT or --file" in out.stderr
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "parse", "--file", str(tmp_path / "missing.txt")],
        cwd=ROOT,
        env=cli_env(tmp_path, nlu_cache_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot read" in out.stderr


async def test_eval_counts_accepted_intents_as_right(recognizer: Recognizer, tmp_path):
    lines = [
        {"text": "hello there", "intent": "greet"},
        # recognised as check_stock: wrong unless accepted
        {"text": "do you have the runner in size 9", "intent": "product_search", "accept": ["check_stock"]},
        {"text": "do you have the runner in size 10", "intent": "product_search"},
        {"text": "where is my parcel", "intent": "order_status", "accept": ["cancel_order"], "lang": "en"},
    ]
    path = tmp_path / "accept.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = await evaluate(recognizer, path)
    assert report.total == 4 and report.accuracy == 0.75, report.to_dict()
    assert report.with_accept == 2 and report.accepted_alternatives == 1
    assert report.per_intent["product_search"] == {"accuracy": 0.5, "count": 2}
    assert report.confusions == [("product_search", "check_stock", 1)]
    assert report.to_dict()["accepted_alternatives"] == 1


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "hi", "accept": ["greet"]}', "expected a JSON object with text and intent"),
        ('{"text": "hi", "intent": "greet", "accept": "greet"}', "accept is not a list"),
        ('{"text": "hi", "intent": "greet", "accept": ["greeting"]}', "unknown intent in accept: 'greeting'"),
    ],
)
async def test_eval_refuses_bad_accept(recognizer: Recognizer, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        await evaluate(recognizer, path)


HELD_OUT = Path(__file__).parent / "data" / "nlu_heldout.jsonl"
BLIND = Path(__file__).parent / "data" / "nlu_blind.jsonl"


async def test_accuracy_on_the_held_out_set(recognizer: Recognizer):
    """Shoppers' phrasing written apart from the examples; no setting was chosen on it (it was
    scored in earlier rounds, so it is not blind). The floors are a few points under the figures
    in the README, so a regression fails."""
    report = await evaluate(recognizer, HELD_OUT)
    # measured: 93.7% English, 94.9% Chinese, 3.3% of in-scope lines and 100% of out-of-scope
    # lines to the fallback
    assert report.per_language["en"]["accuracy"] >= 0.91, report.to_dict()
    assert report.per_language["zh-TW"]["accuracy"] >= 0.92, report.to_dict()
    assert report.in_scope_to_fallback <= 0.05, report.to_dict()
    assert report.out_of_scope_to_fallback >= 0.94, report.to_dict()
    assert report.fallback_by_language["zh-TW"]["out_of_scope_to_fallback"] >= 0.94, report.to_dict()


async def test_accuracy_on_the_blind_set(recognizer: Recognizer):
    """550 lines written without sight of the examples, the dev splits or the recogniser, and
    scored once when everything else was fixed (README). Floors a few points under the figures."""
    report = await evaluate(recognizer, BLIND)
    # measured: 95.7% English, 97.6% Chinese; 1.5% of in-scope lines to the fallback; 97.8% and
    # 100% of out-of-scope lines; product, size and colour all right on 100% of stock questions
    assert report.per_language["en"]["accuracy"] >= 0.93, report.to_dict()
    assert report.per_language["zh-TW"]["accuracy"] >= 0.94, report.to_dict()
    assert report.in_scope_to_fallback <= 0.04, report.to_dict()
    for language in ("en", "zh-TW"):
        assert report.fallback_by_language[language]["out_of_scope_to_fallback"] >= 0.93, report.to_dict()
        assert report.entities_right[language]["share"] >= 0.93, report.to_dict()


@pytest.mark.parametrize(
    "text",
    ["cancel my pro account", "removal of my free account", "restore my password", "submit some feedback"],
)
async def test_account_matters_are_not_taken_by_shop_intents(recognizer: Recognizer, text):
    result = await recognizer.recognize(text)
    assert result.name not in {"cancel_order", "remove_from_cart", "return_item", "opt_in"}, result


@pytest.mark.parametrize(
    "text, intent",
    [
        ("I'm waiting for a reimbursement of 1200 dollars", "refund_status"),
        ("change my shipping address", "change_address"),
        ("what payment methods do you take", "faq"),
        ("under which circumstances can I get my money back", "faq"),
        ("want assistance to cat with a person", "human_agent"),
    ],
)
async def test_questions_the_issue_named(recognizer: Recognizer, text, intent):
    assert (await recognizer.recognize(text)).name == intent


@pytest.mark.parametrize(
    "text, intent, product",
    [
        ("how much are the aero running shoes", "price_question", True),
        ("what does the rain jacket cost", "price_question", True),
        ("Aero 跑鞋多少錢", "price_question", True),
        ("外套的價格是多少", "price_question", False),
        ("I want to complain about the courier", "feedback", False),
        ("I'd like to send you some feedback on the website", "feedback", False),
        ("我要客訴送貨的人", "feedback", False),
        ("想給你們一些建議", "feedback", False),
    ],
)
async def test_price_questions_and_feedback(recognizer: Recognizer, text, intent, product):
    """Phrasings not among the examples; a price question still finds the product named."""
    result = await recognizer.recognize(text)
    assert result.name == intent, result
    if product:
        assert result.entities.product, result


async def test_delivery_cost_is_still_a_shipping_question(recognizer: Recognizer):
    assert (await recognizer.recognize("how much does delivery cost")).name == "faq"
