"""A turn's store work: the message stored before the answer, then one transaction for what the
turn reads (with the open cart and a numbered choice) and one for what it writes."""

from __future__ import annotations

from sqlalchemy import event

from bot.store.database import MISSING, Database
from service.app import DB
from tests.fakes.phone import TwilioShopper

NUMBER = "+14155550123"
ADD_TEE = '/add_to_cart {"product":"TEE-CLASSIC","size":"M","colour":"white"}'


class Transactions:
    """The transactions begun on the app's database engine, each as the statements it ran."""

    def __init__(self, db: Database) -> None:
        self.begun: list[list[str]] = []
        self._current: dict[int, list[str]] = {}
        event.listen(db.engine, "begin", self._begin)
        event.listen(db.engine, "before_cursor_execute", self._execute)

    def _begin(self, connection) -> None:
        self._current[id(connection)] = statements = []
        self.begun.append(statements)

    def _execute(self, connection, cursor, statement, parameters, context, executemany) -> None:
        self._current.setdefault(id(connection), []).append(" ".join(statement.split()))

    def take(self) -> list[list[str]]:
        begun, self.begun = self.begun, []
        return begun


async def test_viewing_the_cart_is_three_transactions_and_shows_what_is_in_it(client, shopper):
    transactions = Transactions(client.app[DB])
    await shopper.say(ADD_TEE)
    assert "Added" in shopper.texts()
    transactions.take()
    await shopper.say("/view_cart")
    # Stored; read (message, customer, state and the open cart); written (replies, processed).
    # (A read-only look for due messages by an outbox lane meanwhile is not the turn's.)
    begun = transactions.take()
    turn = [t for t in begun if any(st.startswith(("INSERT", "UPDATE")) or "bot_state" in st for st in t)]
    assert len(turn) == 3, begun
    reads = [t for t in turn if any("FROM bot_state" in statement for statement in t)]
    assert len(reads) == 1 and any("FROM cartitem" in statement for statement in reads[0]), reads
    assert [t for t in turn if any("FROM cartitem" in statement for statement in t)] == reads  # not read again
    assert len([t for t in turn if any(st.startswith("INSERT INTO message") for st in t)]) == 2  # stored, replies
    assert "Classic" in shopper.texts() and "Your cart is empty" not in shopper.texts()
    # A change to the cart in a turn is seen by what the turn reads after it.
    await shopper.say("/view_cart")
    await shopper.tap(shopper.buttons()[-1])  # remove the one line
    assert "Removed" in shopper.texts() and "Your cart is empty" in shopper.texts()


async def test_a_numbered_answer_is_read_with_the_rest_of_the_turn(channel_client, fake_twilio):
    transactions = Transactions(channel_client.app[DB])
    sms = TwilioShopper(channel_client, fake_twilio, "sms", NUMBER)
    await sms.say(ADD_TEE)
    out = await sms.say("view my cart")
    assert "1. Checkout" in out
    transactions.take()
    out = await sms.say("3")  # "Remove an item": the third option offered
    assert "Removed" in out and "Your cart is empty" in out
    # The options last offered are read in the transaction that reads the conversation's state,
    # not in one of their own (the outbox's transactions for the sends are beside these).
    reads = [t for t in transactions.take() if any("FROM bot_state" in statement for statement in t)]
    assert len(reads) == 1, reads
    assert any(
        "message.direction = " in statement and "ORDER BY message.id DESC" in statement for statement in reads[0]
    )


async def test_a_value_read_ahead_is_given_once_and_dropped_by_the_next_transaction(database_url):
    db = Database(database_url)
    try:
        with db.read_ahead({"cart": 1, "order": 2}):
            assert db.ahead("cart") == 1
            assert db.ahead("cart") is MISSING  # given once
            await db.run(lambda session: None)  # a transaction may change what was read
            assert db.ahead("order") is MISSING
        with db.read_ahead({"cart": 3}):
            assert db.ahead("cart") == 3
        assert db.ahead("cart") is MISSING  # outside the turn there is nothing
    finally:
        db.close()
