"""Command line: serve (default), migrate, scheduler, outbox, campaign, order, catalog, agent, chat, seed,
nlu parse / eval / review / export."""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Settings
from service import agent_cli, campaign_cli, catalog_cli, order_cli

if TYPE_CHECKING:
    from bot.nlu import EvalReport, Recognizer


# What `nlu eval` scores without a file: the test set and the held-out set of shoppers' phrasing.
EVAL_SETS = [
    Path(__file__).parent / "tests" / "data" / name
    for name in ("nlu_test.jsonl", "nlu_heldout.jsonl", "nlu_blind.jsonl")
]
SHUTDOWN_SECONDS = 15.0  # requests in flight get this long to finish when the server stops


class JsonFormatter(logging.Formatter):
    """One JSON object per log line; extra fields are carried over."""

    RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        data.update({k: v for k, v in record.__dict__.items() if k not in self.RESERVED})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # twilio logs whole API requests (phone numbers and bodies) at INFO.
    for noisy in (
        "sentence_transformers",
        "transformers",
        "httpx",
        "aiohttp.access",
        "twilio",
        "apscheduler",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def settle_heap() -> None:
    """Exempt what start-up built (the model, the catalog, the app) from garbage collection: a
    full collection over it takes about 0.3 s, and it would stall every request in flight."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings) -> None:
    from aiohttp import web

    from service.app import create_app

    workers = settings.web_workers
    if workers > 1 and settings.database_url.startswith("sqlite"):
        logging.getLogger("app").warning(
            "WEB_WORKERS above 1 needs PostgreSQL (SQLite serves one process); one web worker runs",
            extra={"web_workers": workers},
        )
        workers = 1
    if workers > 1:
        serve_workers(settings, workers)
        return
    app = create_app(settings, demo_history=True)
    settle_heap()
    logging.getLogger("app").info("serving", extra={"url": f"http://{settings.host}:{settings.port}/"})
    # On SIGTERM or SIGINT: stop listening, give requests in flight up to SHUTDOWN_SECONDS, then
    # the app's cleanup finishes the turns under way and stops the outbox (see service/app.py).
    web.run_app(
        app, host=settings.host, port=settings.port, print=None, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
    )


def serve_workers(settings: Settings, count: int) -> None:
    """`count` serving processes on one port, each with its own listening socket bound with
    SO_REUSEPORT, so that the kernel spreads new connections evenly between them (one shared
    socket let the idlest-looking process take almost every connection: 19 of 20 in a burst).
    The model is loaded and the store prepared once, here;
    the workers are forked after that and share the model's memory copy-on-write (the heap is
    frozen first, so garbage collection does not touch, and copy, its pages). The first worker
    runs the scheduler when SCHEDULER_IN_PROCESS is on; a worker that dies is started again."""
    import os
    import signal
    import time

    from service.wiring import build, build_recognizer

    log = logging.getLogger("app")
    if settings.nlu_threads > 1:
        log.warning(
            "NLU_THREADS above 1 with WEB_WORKERS: the model's thread pool does not survive a fork; "
            "each worker computes on one thread"
        )
    # ONNX Runtime's thread pool, like PyTorch's, does not survive a fork: one thread per worker.
    recognizer = build_recognizer(settings.model_copy(update={"nlu_threads": 1}))
    if recognizer.zh_encoder is not None:
        recognizer.zh_encoder.warm()  # its weights read once, shared by the workers
    # (The dashboard's demo history needs the model in a running loop: `python app.py seed` writes it.)
    prepared = build(settings, seed=True, lead=False)
    prepared.db  # noqa: B018  (the schema and the demo catalog, once, before the workers start)
    prepared.db.close()  # no connection may cross the fork
    settle_heap()
    workers: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def start(index: int) -> None:
        pid = os.fork()
        if pid:
            workers[pid] = index
            return
        code = 0
        try:
            run_worker(settings, index, recognizer)
        except BaseException:
            log.exception("web worker failed", extra={"worker": index})
            code = 1
        finally:
            os._exit(code)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for index in range(count):
        start(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving", extra={"url": f"http://{settings.host}:{settings.port}/", "web_workers": count})
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = workers.pop(pid, None)
        if index is not None and not stopping:
            log.warning("web worker stopped; starting it again", extra={"worker": index, "status": status})
            time.sleep(1.0)
            start(index)


def run_worker(settings: Settings, index: int, recognizer) -> None:
    """One forked serving process: its own store connections, channels, outbox and app."""
    import os

    from aiohttp import web

    from service.app import create_app

    recognizer.batcher.after_fork()
    lead = settings.scheduler_in_process and index == 0
    app = create_app(settings.model_copy(update={"scheduler_in_process": lead}), recognizer, seed=False)
    worker = f"worker-{index}"

    async def served_by(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Served-By"] = worker  # which process answered (load balancing is the kernel's)

    app.on_response_prepare.append(served_by)
    settle_heap()
    logging.getLogger("app").info("web worker serving", extra={"worker": index, "pid": os.getpid()})
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=True, print=None, access_log=None)


def migrate(settings: Settings, new_revision: str | None) -> int:
    """Bring the store to the newest schema revision and say what was done; or, with a message,
    write a new revision from what the models have and the store (at the newest) lacks."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store import schema
    from bot.store.database import make_engine

    where = schema.database_name(settings.database_url)
    try:
        engine = make_engine(settings.database_url, settings.store_timeout_seconds)
        try:
            if new_revision is not None:
                path = schema.autogenerate(engine, new_revision)
                print(f"wrote {path}: review it, then run `python app.py migrate`")
            else:
                print(f"{where}: {schema.upgrade(engine).describe()}")
        finally:
            engine.dispose()
    except (schema.SchemaError, CommandError, SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        print(f"migrate failed on {where}: {reason}", file=sys.stderr)
        return 2
    return 0


async def scheduler_only(settings: Settings) -> None:
    """Scheduled jobs, campaigns and the outbox without a web server; stops on SIGINT/SIGTERM."""
    from service.wiring import build

    services = build(settings, lead=True)
    stop = stop_on_signals()
    services.scheduler  # noqa: B018  (made before the heap is settled)
    settle_heap()
    await services.start_delivery()
    logging.getLogger("app").info("scheduler running", extra={"dispatchers": services.dispatchers})
    await stop.wait()
    await services.close()


async def outbox_only(settings: Settings) -> None:
    """One outbox dispatcher and nothing else (PostgreSQL); stops on SIGINT/SIGTERM, or when the
    scheduler process that started it is gone."""
    from bot.delivery.dispatchers import watch_parent
    from service.wiring import build

    services = build(settings, lead=False)
    if services.db.is_sqlite:
        print(
            "python app.py outbox needs PostgreSQL: SQLite serves one process, whose own dispatcher sends",
            file=sys.stderr,
        )
        await services.close()
        raise SystemExit(2)
    # Its share of SEND_RATE_LIMITS is that of one of OUTBOX_WORKERS dispatchers.
    services.dispatchers = settings.outbox_workers
    stop = stop_on_signals()
    watcher = asyncio.get_running_loop().create_task(watch_parent(stop))
    services.outbox  # noqa: B018  (made before the heap is settled)
    settle_heap()
    services.outbox.start()
    logging.getLogger("app").info("outbox dispatcher running", extra={"channels": sorted(services.channels)})
    await stop.wait()
    watcher.cancel()
    await services.close()


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def chat(settings: Settings, address: str) -> None:
    """Talk to the bot in the terminal, as the shopper with this web address."""
    from uuid import uuid4

    from bot.messages import InboundMessage, OutboundMessage
    from service.wiring import build

    services = build(settings, seed=True)
    engine = services.engine
    print("Type a message (Ctrl-D to quit). Choices can be answered by number.")
    last_choices: list[str] = []
    loop = asyncio.get_running_loop()
    while True:
        try:
            line = await loop.run_in_executor(None, input, "you> ")
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text.isdigit() and 0 < int(text) <= len(last_choices):
            text = last_choices[int(text) - 1]
        _, replies = await engine.handle(InboundMessage("web", address, uuid4().hex, text))
        last_choices = []
        for record in replies:
            msg = OutboundMessage.from_dict(record.payload or {})
            if msg.text:
                print(f"bot> {msg.text}")
            for card in msg.cards:
                print(f"     [{card.title} — {card.subtitle}]")
                for button in card.buttons:
                    last_choices.append(button.value)
                    print(f"       {len(last_choices)}. {button.title}")
            for item in msg.links:
                print(f"     {item.title}: {item.url}")
            for choice in msg.choices:
                last_choices.append(choice.value)
                print(f"     {len(last_choices)}. {choice.title}")
    await services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Omnichannel retail messaging bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the bot (default)")
    chat_cmd = sub.add_parser("chat", help="talk to the bot in the terminal")
    chat_cmd.add_argument(
        "--as",
        dest="address",
        default="demo-shopper",
        help="web address to chat as (default: the demo shopper, who has orders)",
    )
    migrate_cmd = sub.add_parser(
        "migrate", help="upgrade the store's schema to the newest revision (run once before the processes start)"
    )
    migrate_cmd.add_argument(
        "--autogenerate",
        metavar="MESSAGE",
        dest="new_revision",
        help="instead, write a new revision from the models' difference to the store",
    )
    sub.add_parser("seed", help="seed the demo data into an empty store")
    sub.add_parser("scheduler", help="run the scheduler and the outbox alone (for several web workers)")
    sub.add_parser("outbox", help="run one more outbox dispatcher (PostgreSQL; see OUTBOX_WORKERS)")
    campaign_cli.add_parser(sub)
    order_cli.add_parser(sub)
    catalog_cli.add_parser(sub)
    agent_cli.add_parser(sub)
    nlu = sub.add_parser("nlu", help="intent recognition tools")
    nlu_sub = nlu.add_subparsers(dest="nlu_command", required=True)
    parse = nlu_sub.add_parser("parse", help="recognise one text, or each line of a file")
    parse.add_argument("text", nargs="?")
    parse.add_argument(
        "--file", metavar="FILE", help="recognise each line of FILE (- for standard input), one JSON object a line"
    )
    evaluate = nlu_sub.add_parser("eval", help="accuracy on JSONL files of {text, intent, lang?, accept?}")
    evaluate.add_argument(
        "file", type=Path, nargs="*", help="default: the shipped test set and the held-out set (tests/data/)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object per file")
    nlu_sub.add_parser(
        "export",
        help="write the encoder's ONNX graph and the fitted classifiers into NLU_CACHE_DIR (else the first start does)",
    )
    review = nlu_sub.add_parser(
        "review", help="what the bot did not understand (fallbacks, handoffs), grouped by meaning, masked"
    )
    review.add_argument("--days", type=int, default=30, help="the last DAYS days (default 30)")
    review.add_argument("--json", action="store_true", help="print the groups as one JSON array")
    review.add_argument(
        "--teach",
        nargs=2,
        metavar=("GROUP", "INTENT"),
        help="make the messages of group number GROUP (as listed) examples of INTENT, or of an FAQ entry "
        "with faq:KEY; running servers use them within NLU_SYNC_SECONDS",
    )
    args = parser.parse_args(argv)
    if args.command == "nlu" and args.nlu_command == "parse" and (args.text is None) == (args.file is None):
        parse.error("give either TEXT or --file FILE")

    settings = Settings()
    setup_logging(settings.log_level)
    if args.command == "migrate":
        return migrate(settings, args.new_revision)
    from bot.store.schema import SchemaError

    try:
        return run_command(settings, args)
    except SchemaError as exc:
        print(f"the store is not ready: {exc}", file=sys.stderr)
        return 2


async def seed(settings: Settings) -> int:
    """The demo catalog, FAQ and orders into an empty store, and the dashboard's demo history
    played through the bot (which loads the model)."""
    from service.wiring import build

    services = build(settings, seed=True, demo_history=True)
    try:
        services.db  # noqa: B018  (the schema and the demo catalog)
        if not services.seeded:
            print("store already has a catalog; nothing done")
            return 0
        summary = await services.write_demo_history()
        print(
            "seeded"
            + (f"; demo history: {summary.conversations} conversations in {summary.seconds} s" if summary else "")
        )
        return 0
    finally:
        await services.close()


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command in (None, "serve"):
        serve(settings)
    elif args.command == "chat":
        asyncio.run(chat(settings, args.address))
    elif args.command == "seed":
        return asyncio.run(seed(settings))
    elif args.command == "nlu":
        return asyncio.run(nlu_command(settings, args))
    elif args.command == "scheduler":
        asyncio.run(scheduler_only(settings))
    elif args.command == "outbox":
        asyncio.run(outbox_only(settings))
    elif args.command == "campaign":
        return asyncio.run(campaign_cli.run(settings, args))
    elif args.command == "catalog":
        return catalog_cli.run(settings, args)
    elif args.command == "order":
        return asyncio.run(order_cli.run(settings, args))
    elif args.command == "agent":
        return agent_cli.run(settings, args)
    return 0


def open_lines(name: str) -> TextIO:
    """The file, or standard input for "-", read as UTF-8."""
    if name == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    return open(name, encoding="utf-8", errors="replace")  # closed by the caller


async def parse_lines(recognizer: Recognizer, lines: TextIO) -> None:
    """One JSON object per non-empty line: {text, intent, confidence, entities}. Lines are taken
    a batch at a time (one at a time from a terminal), so they share model calls."""
    batch_size = 1 if lines.isatty() else 64
    batch: list[str] = []

    async def flush() -> None:
        for text, result in zip(batch, await asyncio.gather(*(recognizer.recognize(t) for t in batch))):
            data = result.to_dict()
            row = {
                "text": text,
                "intent": data["intent"],
                "confidence": data["confidence"],
                "entities": data["entities"],
            }
            print(json.dumps(row, ensure_ascii=False))
        sys.stdout.flush()
        batch.clear()

    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        batch.append(text)
        if len(batch) >= batch_size:
            await flush()
    if batch:
        await flush()


def review_command(settings: Settings, args: argparse.Namespace) -> int:
    """`python app.py nlu review`: the not-understood messages of the last days, grouped."""
    from bot import analytics
    from bot.store.models import utcnow
    from service.wiring import build

    if not 1 <= args.days <= analytics.MAX_DAYS:
        print(f"--days is 1 to {analytics.MAX_DAYS}", file=sys.stderr)
        return 2
    services = build(settings)
    today = utcnow().date()
    period = analytics.Period(today - timedelta(days=args.days - 1), today)
    items = services.db.transaction(lambda s: analytics.not_understood(s, period))
    distinct = list(dict.fromkeys(text for text, _ in items))
    vectors = services.recognizer.encode_now([t.lower() for t in distinct]) if distinct else []
    groups = analytics.group(items, dict(zip(distinct, vectors, strict=True)))
    if args.teach:
        code = teach_group(services, groups, *args.teach)
        services.db.close()
        return code
    services.db.close()
    if args.json:
        print(json.dumps(analytics.shown(groups), ensure_ascii=False))
        return 0
    if not groups:
        print(f"nothing fell back or was handed over in the last {args.days} days")
        return 0
    print(f"{len(items)} messages not understood in the last {args.days} days, in {len(groups)} groups:")
    for g in groups:
        print(f"{g['group']:3}. {g['count']:5}  {g['example']}  ({g['fallbacks']} fallbacks, {g['handoffs']} handoffs)")
        for text in g["texts"][1:]:
            print(f"            also: {text}")
    return 0


def teach_group(services: Any, groups: list[dict[str, Any]], group: str, intent: str) -> int:
    """`nlu review --teach GROUP INTENT`: store the group's messages as examples."""
    from bot import learning

    if not group.isdigit() or not 1 <= int(group) <= len(groups):
        print(f"no group {group}: the list has {len(groups)} (numbered from 1)", file=sys.stderr)
        return 2
    found = groups[int(group) - 1]
    faq = intent.removeprefix("faq:") if intent.startswith("faq:") else None
    keys = list(services.faq.phrasings())
    try:
        added = services.db.transaction(
            lambda s: learning.teach(s, found["members"], None if faq else intent, faq, keys)
        )
    except learning.TeachError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    taught = learning.teachable(found["members"])
    print(f"group {group} ({found['example']}): {added} new examples of {intent}")
    for text in taught:
        print(f"       {text}")
    if len(taught) < len(found["members"]):
        print(f"       ({len(found['members']) - len(taught)} messages with masked parts left out)")
    return 0


def export_command(settings: Settings) -> int:
    """`python app.py nlu export`: fill NLU_CACHE_DIR with the encoder's ONNX graph and the
    classifiers fitted on the shipped examples, so that a start loads both."""
    from bot.nlu import model_path
    from bot.nlu_encoder import ensure_graph
    from service.wiring import build_recognizer

    if not settings.nlu_cache_dir:
        print("NLU_CACHE_DIR is empty: there is nowhere to keep the graph and the fits", file=sys.stderr)
        return 2
    if settings.nlu_runtime == "onnx":
        print(f"encoder graph: {ensure_graph(model_path(settings.nlu_model), settings.nlu_cache_dir)}")
    build_recognizer(settings).batcher.close()
    print(f"fitted classifiers: {Path(settings.nlu_cache_dir) / 'intents.joblib'}")
    return 0


async def nlu_command(settings: Settings, args: argparse.Namespace) -> int:
    from bot.nlu import evaluate
    from service.wiring import build

    if args.nlu_command == "parse" and args.file:
        try:
            lines = open_lines(args.file)
        except OSError as exc:
            print(f"cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        recognizer = build(settings, seed=True).recognizer
        with lines:
            await parse_lines(recognizer, lines)
        return 0
    if args.nlu_command == "review":
        return review_command(settings, args)
    if args.nlu_command == "export":
        return export_command(settings)
    recognizer = build(settings, seed=True).recognizer
    if args.nlu_command == "parse":
        print(json.dumps((await recognizer.recognize(args.text)).to_dict(), ensure_ascii=False))
        return 0
    files = args.file or EVAL_SETS
    missing = [f for f in files if not f.exists()]
    if missing:
        print(f"no such file: {missing[0]}", file=sys.stderr)
        return 2
    for path in files:
        try:
            report = await evaluate(recognizer, path)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"file": str(path), **report.to_dict()}, ensure_ascii=False))
        else:
            print_report(path, report)
    return 0


def print_report(path: Path, report: EvalReport) -> None:
    print(f"{path}")
    print(f"accuracy: {report.accuracy:.1%} on {report.total} utterances")
    print(
        f"  in-scope lines sent to the fallback: {report.in_scope_to_fallback:.1%}; "
        f"out-of-scope lines sent to the fallback: {report.out_of_scope_to_fallback:.1%}"
    )
    if report.with_accept:
        print(
            f"  {report.with_accept} lines accept more than one intent; "
            f"{report.accepted_alternatives} were right through one of their alternatives"
        )
    print("per language:")
    for lang, row in report.per_language.items():
        shares = report.fallback_by_language.get(lang, {})
        print(
            f"  {lang:8} {row['accuracy']:.1%}  ({row['count']}); to the fallback: in-scope "
            f"{shares.get('in_scope_to_fallback', 0.0):.1%}, out-of-scope {shares.get('out_of_scope_to_fallback', 0.0):.1%}"
        )
    for lang, row in report.entities_right.items():
        print(
            f"  {lang:8} product, size and colour all right: {row['share']:.1%} of {row['count']:.0f} stock questions"
        )
    print("per intent:")
    for intent, row in report.per_intent.items():
        print(f"  {intent:18} {row['accuracy']:.1%}  ({row['count']})")
    print("most frequent confusions (expected -> got):")
    for expected, got, count in report.confusions:
        print(f"  {expected} -> {got}: {count}")
    print()


if __name__ == "__main__":
    sys.exit(main())
