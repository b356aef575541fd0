"""The Magento 2 / Adobe Commerce connector: REST client, mapping, catalog sync and poll,
checkout of paid orders, and order and shipment changes."""
