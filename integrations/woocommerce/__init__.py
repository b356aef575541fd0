"""WooCommerce as the shop's commerce platform: the REST API v3 client, the mapping of its
products onto ours (kept in the same catalog mirror as Shopify's), checkout through pending
orders and their payment URL, and the order events of its webhooks."""
