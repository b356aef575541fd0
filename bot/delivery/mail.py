"""E-mail as an outbox lane (`MAIL_LANE`): the SMTP server of `SMTP_URL`, a neutral message
rendered as plain text and simple HTML, and its send through aiosmtplib. E-mail is no chat the
shopper talks on: it has no channel profile, and only the shop's own notices (an order's
confirmation) are queued on it, to an address the shopper gave.

Imports no settings (the settings validate `SMTP_URL` with `SmtpServer.parse`)."""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from bot.channel import SendError
from bot.messages import OutboundMessage, SendReceipt

if TYPE_CHECKING:
    from bot.delivery.outbox import Delivery

log = logging.getLogger(__name__)

MAIL_LANE = "email"  # the outbox records' `channel` for e-mail
STARTTLS = {"auto": None, "require": True, "off": False}  # smtp://...?starttls=


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail is handed over: `smtp://user:pass@host:port` (STARTTLS when the server offers
    it; `?starttls=require` insists, `?starttls=off` never), or `smtps://` (TLS from the start)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Raises:
        ValueError: not an smtp:// or smtps:// URL with a host (the message never repeats the
            URL, which holds a password)."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError("SMTP_URL has a port that is not a number") from None
        if not host:
            raise ValueError("SMTP_URL has no host")
        tls = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        mode = (query.get("starttls") or ["auto"])[0].lower()
        if mode not in STARTTLS:
            raise ValueError("SMTP_URL's starttls must be auto, require or off")
        if tls and mode != "auto":
            raise ValueError("SMTP_URL: smtps:// is TLS from the start; starttls is for smtp://")
        return cls(
            host,
            port or (465 if tls else 587),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            tls,
            None if tls else STARTTLS[mode],
        )


def message_id(key: str, mail_from: str) -> str:
    """The Message-ID of the e-mail queued under idempotency key `key`: the same on every try, so
    a resent copy is recognisably the same message."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def plain_text(msg: OutboundMessage) -> str:
    """The body as plain text: the text, then one line per card (title, then its amount), then links."""
    lines = [msg.text or ""]
    if msg.cards:
        lines.append("")
        lines.extend(f"{card.title}    {card.subtitle}".rstrip() for card in msg.cards)
    lines.extend(f"{link.title}: {link.url}" for link in msg.links)
    return "\n".join(lines).strip() + "\n"


def html_body(msg: OutboundMessage) -> str:
    """The body as simple HTML: paragraphs, the cards as a table's rows, the links."""
    paragraphs = [p for p in (msg.text or "").split("\n\n") if p.strip()]
    parts = [f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs]
    if msg.cards:
        rows = "".join(
            f'<tr><td style="padding:4px 16px 4px 0">{html.escape(card.title)}</td>'
            f'<td style="padding:4px 0;text-align:right">{html.escape(card.subtitle)}</td></tr>'
            for card in msg.cards
        )
        parts.append(f'<table style="border-collapse:collapse">{rows}</table>')
    parts.extend(f'<p><a href="{html.escape(link.url)}">{html.escape(link.title)}</a></p>' for link in msg.links)
    return (
        f'<!doctype html><html lang="{html.escape(msg.language)}"><head><meta charset="utf-8"></head>'
        f'<body style="font-family:sans-serif">{"".join(parts)}</body></html>'
    )


def render(delivery: Delivery, mail_from: str) -> EmailMessage:
    """The e-mail of one outbox record: plain text with an HTML alternative, a Message-ID from its
    idempotency key."""
    msg = delivery.message
    mail = EmailMessage()
    mail["From"] = mail_from
    mail["To"] = delivery.to.address
    mail["Subject"] = msg.subject or ""
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = message_id(delivery.key or f"record:{delivery.to.address}", mail_from)
    mail.set_content(plain_text(msg))
    mail.add_alternative(html_body(msg), subtype="html")
    mail["Content-Language"] = msg.language  # after the body: setting content drops Content-* headers
    return mail


class MailSender:
    """The e-mail lane's sender: each record is one SMTP transaction. A 5xx answer (no such
    mailbox) is permanent; a server that cannot be reached, or a 4xx, is retried by the outbox."""

    def __init__(self, server: SmtpServer, mail_from: str, timeout: float = 30.0) -> None:
        self.server = server
        self.mail_from = mail_from
        self.timeout = timeout

    @classmethod
    def from_url(cls, url: str, mail_from: str, timeout: float = 30.0) -> MailSender:
        return cls(SmtpServer.parse(url), mail_from, timeout)

    async def deliver(self, delivery: Delivery) -> SendReceipt:
        mail = render(delivery, self.mail_from)
        server = self.server
        try:
            await aiosmtplib.send(
                mail,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.use_tls,
                start_tls=server.start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise SendError(
                "the mail server refused the recipient", f"smtp_{codes[0] if codes else 0}", permanent=_permanent(codes)
            ) from None  # the exception's text names the address
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(
                f"the mail server answered {exc.code}", f"smtp_{exc.code}", permanent=_permanent([exc.code])
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timed out, dropped: try again later
            raise SendError(f"the mail server was not reachable ({type(exc).__name__})", "smtp_unreachable") from None
        return SendReceipt(mail["Message-ID"])

    async def close(self) -> None:
        """Each send has its own connection: nothing stays open."""


def _permanent(codes: list[int]) -> bool:
    return bool(codes) and all(500 <= code < 600 for code in codes)


def is_email(contact: str | None) -> bool:
    """Whether a receipt contact the shopper gave is an e-mail address (else a phone number)."""
    return bool(contact) and "@" in (contact or "")
