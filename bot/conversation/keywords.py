"""Consent keywords a carrier acts on (STOP, START on SMS): applied before any dialog sees the
message, and answered by the carrier itself, so the shop adds no second reply."""

from __future__ import annotations

from sqlmodel import Session

from bot.store.models import Customer, MessageRecord, utcnow


def apply_keyword(session: Session, message_id: int, customer_id: str, channel: str, keyword: str) -> bool:
    """Change consent for a carrier keyword ("opt_out", "opt_in", "help") and mark the message
    handled. Returns False when the message is a plain answer after all ("yes" to one of our
    questions from a shopper who never opted out): the dialogs take it."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return False
    if keyword == "opt_in" and not customer.sms_opted_out and customer.marketing_consent is not False:
        return False  # "yes" to one of our questions, not a re-subscription
    if keyword == "opt_out":
        customer.sms_opted_out, customer.marketing_consent = True, False
    elif keyword == "opt_in":
        customer.sms_opted_out, customer.marketing_consent = False, True
    customer.consent_updated_at = utcnow()
    customer.consent_source = f"{channel}:{keyword}"
    message = session.get(MessageRecord, message_id)
    if message is not None:
        message.status = "processed"
    return True
