"""Marketing: campaigns, abandoned-cart and restock reminders, and the scheduler that runs them."""
