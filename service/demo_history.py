"""Demo history for the dashboard, made by simulated shoppers talking to the real bot.

On a fresh demo store (`python app.py seed`, or the first start of `python app.py`), a few
hundred conversations over the four weeks before the day of seeding are played through the
engine: each message is stored and answered as an inbound message is (`Engine.receive`,
`Engine.run_turn`: the recogniser, the dialogs, the store), under a simulated clock set to that
moment (`bot/clock.py`). The shoppers search, tap recommendations, add to their carts, check
out and pay on the sandbox pay page's path, ask about orders and returns, ask for a person, say
things the bot does not understand; the scheduled jobs run at their simulated times too (cart
reminders, the rating question after conversations the bot handled alone), and a demo agent
takes and resolves the handoffs. So every row the dashboard reads (analytics events, carts,
orders, handoffs, CSAT answers) is written by the code that writes it for a real shopper.

Nothing reaches a provider. The simulated shoppers are a demo channel of their own: like the web
chat, they take the bot's replies in the answer (`reply_status="delivered"`), and what the shop
queues for them on its own (reminders, rating questions, an agent's words) is taken in the same
transaction that queued it (`_take_queued`). Their customers are `demo-history-NNN`, their
events are marked `demo`, their phone numbers are in the range kept for fiction (+1 202
555-0100 to 0199), and once the history is written their channel identities are removed (their
carts left open are marked abandoned, a status nothing scans), so nothing can be sent to them
afterwards. Everything comes from a fixed seed: the same history relative to `now`.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import clock
from bot.channel import identity_key
from bot.csat import GAP as CSAT_GAP
from bot.csat import CsatSampler
from bot.delivery import clicks
from bot.handoff.service import Actor
from bot.marketing.reminders import remind_carts
from bot.marketing.scheduler import reminder_settings
from bot.messages import InboundMessage, OutboundMessage, numbered_options
from bot.store.models import (
    AnalyticsEvent,
    Cart,
    ChannelIdentity,
    Customer,
    Dispatch,
    HandoffTicket,
    MessageRecord,
    Order,
    utcnow,
)

if TYPE_CHECKING:
    from service.wiring import Services

log = logging.getLogger(__name__)

SEED = 17
DAYS = 28  # the page's default period is 30 days: four weeks of history fill it
CONVERSATIONS = 240
SHOPPERS = 110
PREFIX = "demo-history-"
AGENT = Actor("Demo agent")  # the admin's kind of actor: no agent row, so no real ticket is routed to it
AGENT_SAYS = {"en": "Happy to help: that is sorted out for you now.", "zh-TW": "很高興為您服務，已經幫您處理好了。"}
CHANNELS = ("web", "whatsapp", "messenger", "sms")
ADDRESS = {"en": "12 Harbour Street, Springfield 12345", "zh-TW": "台北市信義區松仁路100號"}
# What the shoppers say, by language. A script picks among them.
SAYS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "search": (
            "do you have running shoes?",
            "show me dresses",
            "I'm looking for jeans",
            "any warm socks?",
            "do you sell trail running shoes",
        ),
        "recommend": (
            "what goes well with the trail blazer runner",
            "can you recommend something for running",
            "what would you suggest for a summer party",
        ),
        "stock": ("is the midnight dress in stock in M?", "do you have the trail blazer runner in size 9?"),
        "order": ("where is my order?", "has my order shipped yet"),
        "faq": ("what is your return policy?", "how long does shipping take?", "do you ship abroad?"),
        "greet": ("hi", "hello there"),
        "human": ("I want to talk to a person", "can I speak to a human please"),
        "lost": ("asdf qwerty", "blorp zim", "the purple elephant sings"),
        "checkout": ("checkout",),
        "skip": ("skip",),
    },
    "zh-TW": {
        "search": ("有跑鞋嗎？", "我想看洋裝", "有牛仔褲嗎", "有保暖的襪子嗎？"),
        "recommend": ("有什麼可以推薦的跑步用品嗎", "有什麼跟越野跑鞋搭配的"),
        "stock": ("午夜洋裝有M號嗎？", "越野跑鞋有9號嗎"),
        "order": ("我的訂單在哪裡", "我的訂單出貨了嗎"),
        "faq": ("退貨政策是什麼？", "運送要多久？"),
        "greet": ("你好", "哈囉"),
        "human": ("我想找真人客服", "請幫我轉接客服人員"),
        "lost": ("嗯嗯啊啊", "紫色大象唱歌"),
        "checkout": ("結帳",),
        "skip": ("略過",),
    },
}


@dataclass
class Shopper:
    id: str
    channel: str
    address: str
    language: str
    name: str


@dataclass
class Summary:
    """What the simulation did (the figures come from the store, not from here)."""

    conversations: int = 0
    messages: int = 0
    orders: int = 0
    seconds: float = 0.0
    scripts: dict[str, int] = field(default_factory=dict)


class Chat:
    """One simulated shopper's side of a conversation: says, taps, reads the answers."""

    def __init__(self, sim: Simulation, shopper: Shopper, rng: random.Random, at: clock.SimulatedClock) -> None:
        self.sim, self.shopper, self.rng, self.clock = sim, shopper, rng, at
        self.last: list[OutboundMessage] = []

    def says(self, what: str) -> str:
        return self.rng.choice(SAYS[self.shopper.language][what])

    async def say(self, text: str, pause: tuple[float, float] = (5, 70)) -> list[OutboundMessage]:
        """Send `text` after a pause (seconds) to read and type, as an inbound message is handled."""
        self.clock.advance(timedelta(seconds=round(self.rng.uniform(*pause))))
        sim = self.sim
        sim.summary.messages += 1
        message = InboundMessage(
            channel=self.shopper.channel,
            address=self.shopper.address,
            provider_message_id=f"demo-{sim.summary.messages}",
            text=text,
            received_at=self.clock.now(),
            profile_name=self.shopper.name,
        )
        received = await sim.engine.receive(message)
        # The bot's time to answer: a provider's channel takes longer to hand over than the web's.
        slow = 1.0 if self.shopper.channel == "web" else 2.4
        self.clock.advance(timedelta(milliseconds=round(self.rng.uniform(250, 1400) * slow)))
        rows = await sim.engine.run_turn(received, "delivered")
        self.last = [OutboundMessage.from_dict(r.payload or {}) for r in rows]
        return self.last

    def options(self) -> list[tuple[str, str]]:
        return [(c.title, c.value) for m in self.last for c in numbered_options(m)]

    def texts(self) -> str:
        return "\n".join(m.text or "" for m in self.last)

    async def tap(self, prefix: str, pick_any: bool = False) -> bool:
        """Tap a button whose payload starts with `prefix` (the first, or any); False if none."""
        found = [value for _, value in self.options() if value.startswith(prefix)]
        if not found:
            return False
        await self.say(self.rng.choice(found) if pick_any else found[0], pause=(3, 25))
        return True

    async def add_to_cart(self) -> bool:
        """Tap "Add to cart" on a product shown, then a size and a colour, until it is added."""
        if not await self.tap("/add_to_cart", pick_any=True):
            return False
        for _ in range(4):
            if any(value.startswith("/checkout") for _, value in self.options()):
                return True  # added: the reply offers the checkout
            answers = [value for title, value in self.options() if not value.startswith("/") and value != "No thanks"]
            if not answers:
                return False
            await self.say(self.rng.choice(answers), pause=(2, 15))
        return any(value.startswith("/checkout") for _, value in self.options())

    async def check_out(self) -> int | None:
        """Check out: the address, no receipt e-mail, yes to the order. Returns the order's number."""
        await self.say(self.says("checkout"))
        gave_address = False
        for _ in range(5):
            for message in self.last:
                for link in message.links:
                    if "/pay/" in link.url:
                        return await self.sim.placed(self.shopper)
            if not self.last:
                return None
            options = self.options()
            if options and options[0][1].startswith("/"):
                return None  # the journey ended (an empty cart, a menu)
            if options:
                await self.say(options[0][1], pause=(3, 20))  # "Yes": the saved address, the order
            elif not gave_address:
                gave_address = True
                await self.say(ADDRESS[self.shopper.language], pause=(10, 40))
            else:
                await self.say(self.says("skip"), pause=(3, 10))
        return None


Script = Callable[[Chat], Awaitable[None]]


async def browse(chat: Chat) -> None:
    """Searches, maybe adds something and maybe checks out (or leaves it in the cart)."""
    await chat.say(chat.says("search"))
    if chat.rng.random() < 0.65 and await chat.add_to_cart() and chat.rng.random() < 0.45:
        await chat.check_out()


async def recommended(chat: Chat) -> None:
    """Asks for a suggestion and taps one of the products recommended."""
    await chat.say(chat.says("recommend"))
    if chat.rng.random() < 0.5 and await chat.add_to_cart() and chat.rng.random() < 0.5:
        await chat.check_out()


async def stock(chat: Chat) -> None:
    await chat.say(chat.says("stock"))
    if chat.rng.random() < 0.5:
        answers = [value for _, value in chat.options() if value != "No thanks"]
        if answers:
            await chat.say(answers[0], pause=(3, 20))


async def question(chat: Chat) -> None:
    if chat.rng.random() < 0.3:
        await chat.say(chat.says("greet"))
    await chat.say(chat.says(chat.rng.choice(("order", "faq", "faq"))))


async def person(chat: Chat) -> None:
    """Asks for a person (the demo agent answers and resolves it a few minutes later)."""
    await chat.say(chat.says("human"))


async def lost(chat: Chat) -> None:
    """Says things the bot does not understand (twice in a row, sometimes)."""
    await chat.say(chat.says("lost"))
    if chat.rng.random() < 0.5:
        await chat.say(chat.says("lost"))
    else:
        await chat.say(chat.says("faq"))


SCRIPTS: dict[str, tuple[Script, float]] = {
    "browse": (browse, 0.32),
    "recommended": (recommended, 0.2),
    "stock": (stock, 0.12),
    "question": (question, 0.2),
    "person": (person, 0.06),
    "lost": (lost, 0.1),
}


class Simulation:
    """Plays the conversations one after another in time order, with the scheduled jobs between."""

    def __init__(
        self, services: Services, now: datetime, conversations: int = CONVERSATIONS, scripts: tuple[str, ...] = ()
    ) -> None:
        self.services = services
        self.db = services.db
        self.engine = services.engine
        self.now = now
        self.count = conversations
        self.scripts = scripts or tuple(SCRIPTS)  # the scripts played (all, by their weights)
        self.rng = random.Random(SEED)
        self.summary = Summary()
        self.to_resolve: list[tuple[Shopper, datetime]] = []
        self.answers: dict[str, int] = {}  # shopper id -> the rating they will give if asked
        self.by_id: dict[str, Shopper] = {}
        self.jobs_at: datetime | None = None  # when the scheduled jobs last ran
        self.due: list[datetime] = []  # when they run next (a heap)
        settings = services.settings
        self.reminders = reminder_settings(settings, services.links)
        self.csat = CsatSampler(self.db, services.policy, settings.csat_sample_rate, lambda: None)

    async def run(self) -> Summary:
        started = time.monotonic()
        shoppers = await self.db.run(self._shoppers)
        self.by_id = {s.id: s for s in shoppers}
        end = (self.now - timedelta(days=1)).replace(hour=22, minute=0, second=0, microsecond=0)
        start = (end - timedelta(days=DAYS)).replace(hour=0, minute=0)
        moments = sorted(
            start + timedelta(days=self.rng.randrange(DAYS) + self.rng.random() ** 0.8, hours=0)
            for _ in range(self.count)
        )
        names = self.scripts
        weights = [SCRIPTS[name][1] for name in names]
        busy_until: dict[str, datetime] = {}
        for moment in moments:
            moment = moment.replace(microsecond=0)
            hour = 8 + (moment.hour * 60 + moment.minute) * 14 // (24 * 60)  # shoppers write 08:00-22:00
            moment = moment.replace(hour=hour)
            shopper = self.rng.choice(shoppers)
            moment = max(moment, busy_until.get(shopper.id, moment))
            await self._jobs_until(moment)
            name = self.rng.choices(names, weights)[0]
            with clock.simulated(moment) as at:
                chat = Chat(self, shopper, random.Random(self.rng.random()), at)
                await SCRIPTS[name][0](chat)
                busy_until[shopper.id] = at.now() + timedelta(minutes=31)
                self.after(at.now())
                if await self.db.run(lambda s, shopper=shopper: _open_ticket(s, shopper.id)) is not None:
                    # a person was asked for, or the bot handed over: the demo agent comes
                    self.to_resolve.append((shopper, at.now() + timedelta(minutes=self.rng.randint(2, 30))))
            self.summary.conversations += 1
            self.summary.scripts[name] = self.summary.scripts.get(name, 0) + 1
        await self._jobs_until(self.now - timedelta(hours=2))
        await self.db.run(self._retire)
        self.summary.seconds = round(time.monotonic() - started, 1)
        return self.summary

    # --- the shoppers and what the shop does between their messages ---------------------------

    def _shoppers(self, session: Session) -> list[Shopper]:
        """The demo shoppers, made as a first message makes a customer, with ids of their own."""
        shoppers = []
        for n in range(1, SHOPPERS + 1):
            channel = CHANNELS[n % len(CHANNELS)]
            language = "zh-TW" if n % 3 == 0 else "en"
            address = {
                "web": f"demo-web-{n:03d}",
                "messenger": f"demo-psid-{n:03d}",
                "whatsapp": f"whatsapp:+120255501{n % 100:02d}",
                "sms": f"+120255501{n % 100:02d}",
            }[channel]
            shopper = Shopper(f"{PREFIX}{n:03d}", channel, address, language, f"Demo {n:03d}")
            space, key = identity_key(channel, address)
            if session.exec(
                select(ChannelIdentity.id).where(ChannelIdentity.channel == space, ChannelIdentity.address == key)
            ).first():
                continue  # one phone number is one shopper on every phone channel
            session.add(
                Customer(
                    id=shopper.id,
                    display_name=shopper.name,
                    language=language,
                    last_channel=channel,
                    marketing_consent=True,
                    created_at=self.now - timedelta(days=DAYS + 2),
                )
            )
            session.flush()
            session.add(ChannelIdentity(channel=space, address=key, customer_id=shopper.id))
            shoppers.append(shopper)
            self.answers[shopper.id] = self.rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0]
        return shoppers

    async def placed(self, shopper: Shopper) -> int | None:
        """The order just placed; most are paid on the pay page's path a few minutes later."""
        order = await self.db.run(
            lambda s: s.exec(
                select(Order).where(Order.customer_id == shopper.id).order_by(col(Order.id).desc())
            ).first()
        )
        if order is None or order.payment_ref is None:
            return None
        self.summary.orders += 1
        if self.rng.random() < 0.85:
            at = clock.now() + timedelta(minutes=self.rng.randint(2, 15))
            with clock.simulated(at):
                await self.services.orders.mark_paid(order.payment_ref, self._taken(self.services.on_paid))
        return order.number

    def _taken(self, on_paid):
        def queue_and_take(session: Session, customer_id: str, order) -> None:
            on_paid(session, customer_id, order)
            _take_queued(session)

        return queue_and_take

    def after(self, end: datetime) -> None:
        """A conversation ended at `end`: the scheduler's jobs run when they would find it (the
        rating question's gap, each cart reminder's delay), a minute late as a job every minute is."""
        for delay in (CSAT_GAP, *self.reminders.delays[:2]):
            heapq.heappush(self.due, end + delay + timedelta(minutes=1))

    async def _jobs_until(self, moment: datetime) -> None:
        """Run, in time order, what the scheduler and the demo agent do up to `moment`."""
        while True:
            resolve = min((t for t in self.to_resolve), key=lambda t: t[1], default=None)
            job = self.due[0] if self.due else None
            if resolve is not None and resolve[1] <= moment and (job is None or resolve[1] <= job):
                self.to_resolve.remove(resolve)
                await self._agent(*resolve)
            elif job is not None and job <= moment:
                heapq.heappop(self.due)
                if job > (self.jobs_at or job - timedelta(seconds=1)):
                    self.jobs_at = job
                    with clock.simulated(job):
                        await self.db.run(lambda s, at=job: self._scheduled(s, at))
                    await self._answer_questions(job)
            else:
                return

    def _scheduled(self, session: Session, at: datetime) -> None:
        remind_carts(session, self.services.policy, self.reminders, at)
        self.csat.ask(session, at)
        _take_queued(session)

    async def _agent(self, shopper: Shopper, at: datetime) -> None:
        """The demo agent takes the ticket, answers, resolves it; the shopper may rate them."""
        handoffs = self.services.handoffs
        ticket_id = await self.db.run(lambda s: _open_ticket(s, shopper.id))
        if ticket_id is None:
            return
        with clock.simulated(at) as now:
            await self.db.run(lambda s: handoffs.claim(s, ticket_id, AGENT))
            now.advance(timedelta(minutes=self.rng.randint(1, 4)))
            await self.db.run(
                lambda s: (handoffs.reply(s, ticket_id, AGENT, AGENT_SAYS[shopper.language]), _take_queued(s))
            )
            now.advance(timedelta(minutes=self.rng.randint(3, 25)))
            await self.db.run(lambda s: (handoffs.resolve(s, ticket_id, AGENT), _take_queued(s)))
            if self.rng.random() < 0.7:  # the rating question after a handoff
                await Chat(self, shopper, self.rng, now).say(str(self.answers[shopper.id]), pause=(20, 600))
            self.after(now.now())

    async def _answer_questions(self, at: datetime) -> None:
        """What the jobs just sent: most shoppers asked for a rating give one, and some shoppers
        reminded of their cart open its link (as `GET /r/...` records it) and come back for it."""
        asked = await self.db.run(lambda s: _asked_at(s, at))
        for customer_id, kind, key in asked:
            shopper = self.by_id.get(customer_id)
            if shopper is None:
                continue
            if kind == "csat" and self.rng.random() < 0.6:
                with clock.simulated(at) as now:
                    await Chat(self, shopper, self.rng, now).say(str(self.answers[customer_id]), pause=(30, 900))
            elif kind == "cart_reminder" and self.rng.random() < 0.4:
                opened = at + timedelta(minutes=self.rng.randint(5, 180))
                await self.db.run(lambda s, key=key, opened=opened: clicks.record_click(s, key, opened))
                if self.rng.random() < 0.7:
                    with clock.simulated(opened + timedelta(minutes=1)) as now:
                        await Chat(self, shopper, random.Random(self.rng.random()), now).check_out()
                        self.after(now.now())

    def _retire(self, session: Session) -> None:
        """The history's events are marked demo, and no message may reach a demo shopper from now
        on: no address, no open cart."""
        ids = list(self.answers)
        session.execute(update(AnalyticsEvent).where(col(AnalyticsEvent.customer_id).in_(ids)).values(demo=True))
        session.execute(
            update(Cart).where(col(Cart.customer_id).in_(ids), Cart.status == "open").values(status="abandoned")
        )
        for identity in session.exec(select(ChannelIdentity).where(col(ChannelIdentity.customer_id).in_(ids))).all():
            session.delete(identity)
        session.execute(update(Customer).where(col(Customer.id).in_(ids)).values(phone=None))


def _take_queued(session: Session) -> None:
    """What the shop queued for demo shoppers in this transaction is taken by their demo channel
    at once (as the web chat's widget takes its messages), so no outbox ever sends it."""
    session.flush()
    session.execute(
        update(MessageRecord)
        .where(
            col(MessageRecord.customer_id).startswith(PREFIX),
            col(MessageRecord.direction) == "out",
            col(MessageRecord.status).in_(["pending", "sending"]),
        )
        .values(status="delivered", provider_message_id=None)
    )


def _open_ticket(session: Session, customer_id: str) -> int | None:
    return session.exec(
        select(HandoffTicket.id)
        .where(HandoffTicket.customer_id == customer_id, HandoffTicket.status != "resolved")
        .order_by(col(HandoffTicket.id).desc())
    ).first()


def _asked_at(session: Session, at: datetime) -> list[tuple[str, str, str]]:
    """The demo shoppers the jobs sent something at `at`: who, what (the `Dispatch` source), its key."""
    rows = session.exec(
        select(Dispatch.customer_id, Dispatch.source, Dispatch.key)
        .where(col(Dispatch.customer_id).startswith(PREFIX), Dispatch.status == "queued", Dispatch.created_at == at)
        .order_by(col(Dispatch.id))
    ).all()
    return [(c, s, k) for c, s, k in rows]


async def write(
    services: Services, now: datetime | None = None, conversations: int = CONVERSATIONS, scripts: tuple[str, ...] = ()
) -> Summary:
    """Play the demo history ending the day before `now` (default: the wall clock): `conversations`
    of the `scripts` named (default: all of `SCRIPTS`, by their weights)."""
    simulation = Simulation(services, now or utcnow(), conversations, scripts)
    summary = await simulation.run()
    log.info(
        "demo history written",
        extra={"conversations": summary.conversations, "messages": summary.messages, "seconds": summary.seconds},
    )
    return summary
