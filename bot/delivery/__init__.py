"""Getting messages out: the outbox, its dispatchers, proactive sends and the policy every push passes."""
