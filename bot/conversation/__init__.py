"""One shopper's conversation: the turn pipeline, identity across channels, linking, the flood limit."""
