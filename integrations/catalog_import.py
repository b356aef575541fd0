"""Reading a shop's catalog from Shopify's product CSV export: the bytes checked and decoded,
every row validated, and the products and variants it describes. Pure: no store; the command
that writes the result is `service/catalog_cli.py`.

The format: a header row with Shopify's columns, one row per variant; the first row of a product
carries its Handle, Title, Body (HTML), Type, Tags, Status ...; the rows after it repeat only the
Handle and the variant (and image) columns. Rows with only an extra image are passed over.

How it maps onto the store:
- the Handle is the product's key (`Product.sku`); a row without a Variant SKU gets one made of
  the handle and its option values;
- options named Size (also "Shoe size", 尺寸 ...) and Colour/Color (顏色 ...) are the variant's size
  and colour; other options (Material, Style ...) are not kept: the store's variants have no place
  for them, so two variants differing only in them are refused as a repeat;
- a product without a size option gets size "OS" (one size, as the demo catalog has it), one
  without a colour option gets colour "standard";
- Variant Price is the product's price (the store keeps one price per product): the lowest of its
  variants' prices;
- Body (HTML) becomes plain text; Tags are comma-separated; Type (else the last part of Product
  Category) becomes the category, common words mapped to the bot's own (tee -> t-shirts);
- Status draft or archived (or, without a Status, Published false) products are skipped; the
  store has no hidden products;
- Image Src, Vendor, Variant Compare At Price, Variant Grams and the rest are not kept (the store
  has no field for them).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html.parser import HTMLParser

from bot.nlu import CATEGORY_WORDS

REQUIRED_COLUMNS = ("Handle", "Title", "Variant Price")
MAX_STOCK = 1_000_000
MAX_PRICE = Decimal("1000000")
NO_SIZE = "OS"
NO_COLOUR = "standard"
SIZE_NAMES = {"size", "sizes", "shoe size", "clothing size", "尺寸", "尺碼", "尺码", "サイズ"}
COLOUR_NAMES = {"colour", "color", "colours", "colors", "顏色", "颜色", "色"}
HIDDEN_STATUSES = {"draft", "archived"}
VARIANT_COLUMNS = ("Option1 Value", "Option2 Value", "Option3 Value", "Variant SKU", "Variant Price")


class CatalogImportError(ValueError):
    """The file cannot be imported; the message names the line where it can."""


@dataclass
class ImportedVariant:
    sku: str
    size: str
    colour: str
    stock: int
    price_cents: int
    line: int


@dataclass
class ImportedProduct:
    sku: str  # the handle
    name: str
    category: str
    description: str
    tags: list[str]
    line: int
    variants: list[ImportedVariant] = field(default_factory=list)

    @property
    def price_cents(self) -> int:
        return min(v.price_cents for v in self.variants)


@dataclass
class ParsedCatalog:
    products: list[ImportedProduct]
    skipped: list[str]  # handles of draft or archived products


def decode(data: bytes) -> str:
    """The file's text: UTF-8, with or without a byte order mark."""
    if not data.strip():
        raise CatalogImportError("the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CatalogImportError(
            f"line {line}: the file is not UTF-8 (byte {exc.start} is 0x{data[exc.start]:02x}); "
            "export it again from Shopify, or save it as UTF-8"
        ) from None


class _TextOnly(HTMLParser):
    BREAKS = {"p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style"):
            self.skipping += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(html: str) -> str:
    """The text of an HTML fragment: tags, scripts and styles dropped, entities decoded, spaces tidied."""
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def category_of(product_type: str, product_category: str) -> str:
    """Type, else the last part of Shopify's Product Category ("Apparel & Accessories > Clothing >
    Shirts & Tops"), as one of the bot's categories when a word of it is one (Tee -> t-shirts),
    else lower-cased as given."""
    raw = product_type.strip() or product_category.split(">")[-1].strip()
    low = raw.lower()
    if not low:
        return "other"
    if low in CATEGORY_WORDS:
        return CATEGORY_WORDS[low]
    for word in reversed(re.findall(r"[a-z][a-z-]*", low)):
        if word in CATEGORY_WORDS:
            return CATEGORY_WORDS[word]
    return low


def parse_price(raw: str, line: int) -> int:
    text = raw.strip().replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not text or not value.is_finite():
        raise CatalogImportError(f"line {line}: Variant Price {raw!r} is not a number")
    if value < 0 or value >= MAX_PRICE:
        raise CatalogImportError(f"line {line}: Variant Price {raw!r} must be from 0 to {MAX_PRICE}")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_stock(raw: str, line: int) -> int:
    text = raw.strip()
    if not text:
        return 0
    if not re.fullmatch(r"[+-]?\d+", text):
        raise CatalogImportError(f"line {line}: Variant Inventory Qty {raw!r} is not a whole number")
    value = int(text)
    if value < 0:
        raise CatalogImportError(f"line {line}: Variant Inventory Qty {raw!r} is negative")
    if value > MAX_STOCK:
        raise CatalogImportError(f"line {line}: Variant Inventory Qty {raw!r} is more than {MAX_STOCK}")
    return value


def _slug(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "-", value).strip("-").upper()


def size_and_colour(options) -> tuple[str | None, str | None]:
    """The size and colour among a variant's (option name, value) pairs: options named Size
    (Shoe size, 尺寸 ...) and Colour/Color (顏色 ...); None for one it does not have."""
    size = colour = None
    for name, value in options:
        name, value = name.strip().lower(), value.strip()
        if not value:
            continue
        if name in SIZE_NAMES or name.endswith(" size") or name.endswith("尺寸"):
            size = value
        elif name in COLOUR_NAMES or name.endswith(" colour") or name.endswith(" color"):
            colour = value.lower()
    return size, colour


def variant_key(handle: str, values) -> str:
    """The key of a variant that has no SKU: its product's handle and its option values."""
    named = [_slug(v) for v in values if v and v.lower() != "default title"]
    return "-".join([_slug(handle), *[n for n in named if n]])


def _is_hidden(row: dict[str, str]) -> bool:
    status = row.get("Status", "").strip().lower()
    if status:
        return status in HIDDEN_STATUSES
    return row.get("Published", "").strip().lower() == "false"


def parse_shopify_csv(text: str) -> ParsedCatalog:
    """The products of a Shopify product CSV export, every row checked.

    Raises:
        CatalogImportError: the first problem found, naming its line.
    """
    if not text.strip():
        raise CatalogImportError("the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise CatalogImportError(f"line 1: {exc}") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogImportError(
            f"line 1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(is this a Shopify product CSV export?)"
        )
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise CatalogImportError(f"line 1: column {', '.join(repeated)} appears twice")

    products: dict[str, ImportedProduct] = {}
    option_names: dict[str, list[str]] = {}
    hidden: dict[str, int] = {}
    variant_lines: dict[str, int] = {}
    combos: dict[tuple[str, str, str], int] = {}
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CatalogImportError(f"line {line}: {exc}") from None
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise CatalogImportError(f"line {start}: {len(cells)} cells, but the header has {len(header)} columns")
        row = {name: value for name, value in zip(header, cells)}
        handle = row.get("Handle", "").strip()
        if not handle:
            raise CatalogImportError(f"line {start}: Handle is empty")
        if handle in hidden:
            continue
        product = products.get(handle)
        if product is None:
            title = row.get("Title", "").strip()
            if not title:
                raise CatalogImportError(f"line {start}: Title is empty on the first row of product {handle!r}")
            if _is_hidden(row):
                hidden[handle] = start
                continue
            product = products[handle] = ImportedProduct(
                sku=handle,
                name=title,
                category=category_of(row.get("Type", ""), row.get("Product Category", "")),
                description=plain_text(row.get("Body (HTML)", "")),
                tags=[t.strip() for t in row.get("Tags", "").split(",") if t.strip()],
                line=start,
            )
            option_names[handle] = [row.get(f"Option{i} Name", "").strip().lower() for i in (1, 2, 3)]
        elif not any(row.get(c, "").strip() for c in VARIANT_COLUMNS):
            continue  # one more image of the product
        values = [row.get(f"Option{i} Value", "").strip() for i in (1, 2, 3)]
        size, colour = size_and_colour(zip(option_names[handle], values))
        sku = row.get("Variant SKU", "").strip() or variant_key(handle, values)
        if sku in variant_lines:
            raise CatalogImportError(f"line {start}: variant SKU {sku!r} is already on line {variant_lines[sku]}")
        combo = (handle, size or NO_SIZE, colour or NO_COLOUR)
        if combo in combos:
            raise CatalogImportError(
                f"line {start}: {handle!r} already has size {combo[1]} in {combo[2]} on line {combos[combo]} "
                "(options other than size and colour are not kept)"
            )
        variant_lines[sku] = combos[combo] = start
        if not row.get("Variant Price", "").strip():
            raise CatalogImportError(f"line {start}: Variant Price is empty")
        product.variants.append(
            ImportedVariant(
                sku=sku,
                size=combo[1],
                colour=combo[2],
                stock=parse_stock(row.get("Variant Inventory Qty", ""), start),
                price_cents=parse_price(row["Variant Price"], start),
                line=start,
            )
        )
    if not products and not hidden:
        raise CatalogImportError("line 2: no products after the header")
    return ParsedCatalog(list(products.values()), list(hidden))
