"""`python app.py catalog import FILE.csv`: a Shopify product CSV export loaded into the store,
then the bot answering about what it loaded; the parser on its own; bad files refused whole."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.config import Settings
from bot.messages import OutboundMessage
from bot.nlu import Recognizer
from bot.store.models import MessageRecord
from integrations.catalog_import import CatalogImportError, decode, parse_shopify_csv, plain_text
from service.app import DB, create_app
from tests.fakes.web_shopper import WebShopper

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "Handle,Title,Body (HTML),Vendor,Product Category,Type,Tags,Published,Option1 Name,Option1 Value,"
    "Option2 Name,Option2 Value,Option3 Name,Option3 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,"
    "Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,"
    "Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Variant Barcode,Image Src,Image Position,"
    "Image Alt Text,Status"
)
ROWS = [
    'harbour-tee,Harbour Tee,"<p>Soft <b>cotton</b> tee &amp; more.</p>",Acme,'
    'Apparel & Accessories > Clothing > Shirts & Tops,T-Shirt,"cotton, summer",true,Size,S,Colour,Sand,,,'
    "HT-S-SAND,200,shopify,3,deny,manual,25.00,,true,true,,https://img.test/1.jpg,1,,active",
    "harbour-tee,,,,,,,,,S,,Teal,,,HT-S-TEAL,200,shopify,0,deny,manual,25.00,,true,true,,,,,",
    "harbour-tee,,,,,,,,,M,,Sand,,,,200,shopify,7,deny,manual,26.50,,true,true,,,,,",
    "harbour-tee,,,,,,,,,,,,,,,,,,,,,,,,,https://img.test/2.jpg,2,,",
    "trail-glide,Trail Glide,<p>Grippy trail shoe</p>,Acme,,Shoes,running,true,Shoe size,8,,,,,TG-8,,shopify,2,"
    "deny,manual,99.5,,true,true,,,,,active",
    "trail-glide,,,,,,,,,9,,,,,TG-9,,shopify,0,deny,manual,99.5,,true,true,,,,,",
    "secret-hat,Secret Hat,,Acme,,Hats,,false,Size,OS,,,,,SH-OS,,shopify,1,deny,manual,10,,true,true,,,,,draft",
]


def csv_text(rows: list[str] = ROWS) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def import_file(
    database_url: str, path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "app.py", "catalog", "import", str(path), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def store_rows(database_url: str) -> tuple[list[tuple], list[tuple]]:
    connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        products = connection.execute("SELECT sku, name, category, price_cents FROM product ORDER BY sku").fetchall()
        variants = connection.execute("SELECT sku, size, colour, stock FROM variant ORDER BY sku").fetchall()
    finally:
        connection.close()
    return products, variants


# --- the parser alone -------------------------------------------------------------------------


def test_parser_reads_products_variants_and_continuation_rows() -> None:
    parsed = parse_shopify_csv(csv_text())
    tee, shoe = parsed.products
    assert parsed.skipped == ["secret-hat"]
    assert (tee.sku, tee.name, tee.category, tee.tags) == (
        "harbour-tee",
        "Harbour Tee",
        "t-shirts",
        ["cotton", "summer"],
    )
    assert tee.description == "Soft cotton tee & more."
    assert [(v.sku, v.size, v.colour, v.stock, v.price_cents) for v in tee.variants] == [
        ("HT-S-SAND", "S", "sand", 3, 2500),
        ("HT-S-TEAL", "S", "teal", 0, 2500),
        ("HARBOUR-TEE-M-SAND", "M", "sand", 7, 2650),  # no Variant SKU: made from handle and options
    ]
    assert tee.price_cents == 2500
    assert shoe.category == "shoes"
    assert [(v.sku, v.size, v.colour, v.price_cents) for v in shoe.variants] == [
        ("TG-8", "8", "standard", 9950),
        ("TG-9", "9", "standard", 9950),
    ]


def test_plain_text_drops_tags_scripts_and_keeps_paragraphs() -> None:
    assert plain_text("<p>One&nbsp;<i>two</i></p><script>alert(1)</script><ul><li>three</li></ul>") == (
        "One two\nthree"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (HEADER.replace("Variant Price,", "Price,") + "\n" + ROWS[0] + "\n", "line 1: missing column Variant Price"),
        (csv_text([ROWS[0], ROWS[1].replace("25.00", "twenty")]), "line 3: Variant Price 'twenty' is not a number"),
        (csv_text([ROWS[0].replace(",3,deny", ",-2,deny")]), "line 2: Variant Inventory Qty '-2' is negative"),
        (csv_text([ROWS[1]]), "line 2: Title is empty on the first row of product 'harbour-tee'"),
        (
            csv_text([ROWS[0], ROWS[0].replace("Harbour Tee", "")]),
            "line 3: variant SKU 'HT-S-SAND' is already on line 2",
        ),
        (HEADER + "\n", "line 2: no products after the header"),
    ],
)
def test_parser_names_the_line_of_a_problem(text: str, message: str) -> None:
    with pytest.raises(CatalogImportError, match="^" + message.replace("(", r"\(")):
        parse_shopify_csv(decode(text.encode()))


def test_decode_takes_a_byte_order_mark_and_names_the_line_of_bad_bytes() -> None:
    assert decode(b"\xef\xbb\xbfHandle\n") == "Handle\n"
    with pytest.raises(CatalogImportError, match=r"^line 2: the file is not UTF-8 \(byte 10 is 0xe9\)"):
        decode(b"Handle\nCaf\xe9\n")


def test_a_multiline_body_counts_its_lines() -> None:
    rows = [ROWS[0].replace("<p>Soft", "<p>Soft\nand\nlight"), ROWS[1].replace("25.00", "x")]
    with pytest.raises(CatalogImportError, match="^line 5: Variant Price 'x'"):
        parse_shopify_csv(csv_text(rows))


# --- the command and the bot ------------------------------------------------------------------


async def shop_on(database_url: str, aiohttp_client, recognizer: Recognizer) -> tuple[Any, WebShopper]:
    """The bot serving the store at `database_url`, and a web shopper talking to it."""
    settings = Settings(
        _env_file=None, database_url=database_url, public_base_url="http://shop.test", bot_disclosure="off"
    )
    client = await aiohttp_client(create_app(settings, recognizer))
    return client, await WebShopper.start(client)


async def test_imported_product_is_answered_by_the_bot_and_a_second_import_updates(
    tmp_path: Path, aiohttp_client, recognizer: Recognizer
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shop.db'}"
    first = tmp_path / "products.csv"
    first.write_text(csv_text(), encoding="utf-8")
    done = import_file(database_url, first)
    assert done.returncode == 0, done.stderr
    assert "products: 2 added, 0 updated, 1 skipped" in done.stdout
    assert "variants: 5 added, 0 updated" in done.stdout
    products, variants = store_rows(database_url)
    assert [p[0] for p in products] == ["harbour-tee", "trail-glide"]  # the draft is not imported

    client, shopper = await shop_on(database_url, aiohttp_client, recognizer)
    await shopper.say("Do you have the Harbour Tee in size M?")
    assert "Harbour Tee" in shopper.texts() and "in stock" in shopper.texts(), shopper.texts()
    # what the bot says the shop sells is this shop's catalog, not the demo's
    await shopper.say("do you sell lipstick?")
    assert "Sorry, we don't sell lipstick. We have shoes and t-shirts." in shopper.texts(), shopper.texts()
    await client.close()

    second = tmp_path / "again.csv"
    second.write_text(csv_text([ROWS[0].replace("25.00", "22.00"), ROWS[1].replace(",0,deny", ",4,deny"), *ROWS[2:]]))
    done = import_file(database_url, second)
    assert done.returncode == 0, done.stderr
    assert "products: 0 added, 2 updated" in done.stdout
    assert "variants: 0 added, 5 updated" in done.stdout
    products, variants = store_rows(database_url)
    assert ("harbour-tee", "Harbour Tee", "t-shirts", 2200) in products and len(products) == 2
    assert ("HT-S-TEAL", "S", "teal", 4) in variants and len(variants) == 5


async def test_a_restock_by_import_sends_the_waitlist_a_tracked_link(
    tmp_path: Path, aiohttp_client, recognizer: Recognizer
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shop.db'}"
    path = tmp_path / "products.csv"
    path.write_text(csv_text(), encoding="utf-8")
    assert import_file(database_url, path).returncode == 0
    client, shopper = await shop_on(database_url, aiohttp_client, recognizer)
    await shopper.say("do you have the harbour tee in teal in size S?")
    assert "sold out" in shopper.texts(), shopper.texts()
    await shopper.tap("Yes")  # tell me when it is back

    path.write_text(csv_text([ROWS[0], ROWS[1].replace(",0,deny", ",4,deny"), *ROWS[2:]]))
    done = import_file(database_url, path, env={"PUBLIC_BASE_URL": "http://shop.test"})
    assert "back in stock: 1 variants; waitlist notices: 1 queued" in done.stdout, done.stdout
    [row] = await client.app[DB].run(
        lambda s: s.exec(select(MessageRecord).where(col(MessageRecord.idempotency_key).startswith("restock:"))).all()
    )
    [link] = OutboundMessage.from_dict(row.payload or {}).links
    assert link.url.startswith("http://shop.test/r/restock:"), link.url
    resp = await client.get(link.url.removeprefix("http://shop.test"), allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/?product=harbour-tee"
    await client.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER.replace("Handle,", "Id,").encode() + b"\n", "line 1: missing column Handle"),
        (csv_text([ROWS[0], ROWS[1].replace("25.00", "abc")]).encode(), "line 3: Variant Price 'abc' is not a number"),
        (csv_text([ROWS[0].replace("Harbour", "Caf\xe9")]).encode("latin-1"), "line 2: the file is not UTF-8"),
        (b"", "the file is empty"),
    ],
)
def test_a_bad_file_exits_2_and_leaves_the_store_as_it_was(tmp_path: Path, content: bytes, message: str) -> None:
    database_url = f"sqlite:///{tmp_path / 'shop.db'}"
    good = tmp_path / "good.csv"
    good.write_text(csv_text())
    assert import_file(database_url, good).returncode == 0
    before = store_rows(database_url)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    done = import_file(database_url, bad)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert store_rows(database_url) == before


def test_replace_removes_products_not_in_the_file(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shop.db'}"
    path = tmp_path / "products.csv"
    path.write_text(csv_text())
    assert import_file(database_url, path).returncode == 0
    path.write_text(csv_text(ROWS[:4]))
    done = import_file(database_url, path)
    assert "1 left as they were" in done.stdout
    assert [p[0] for p in store_rows(database_url)[0]] == ["harbour-tee", "trail-glide"]
    done = import_file(database_url, path, "--replace")
    assert done.returncode == 0, done.stderr
    assert "1 removed" in done.stdout
    products, variants = store_rows(database_url)
    assert [p[0] for p in products] == ["harbour-tee"] and len(variants) == 3
