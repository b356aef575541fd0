"""Shopify as the shop's commerce platform: the Admin GraphQL client, the mapping of its
products and orders onto ours, the catalog mirror kept by sync and webhooks, and checkout
through draft orders."""
