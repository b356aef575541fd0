"""What a provider's webhook verification raises when a request does not prove it is the
provider's. Stripe, PayPal and EasyPost verify their own events here in `integrations/`; Shopify's
check is in `service/shopify_webhooks.py`; every one of their webhooks answers it with 403 and
stores nothing (`refused` in `service/http.py`). A request that proves it is the provider's but
whose body we cannot read is a plain `ValueError`: 400."""

from __future__ import annotations


class WebhookRefused(Exception):
    """A missing, bad or stale signature, or the provider would not confirm the request.

    The message says why in a few plain words, safe to answer with: never the body or a secret.
    """
