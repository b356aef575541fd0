"""Human handoff: when a person takes over, the ticket, its summary and staffed hours."""
