"""Use cases. They take a session, use the domain and the repositories, flush and never commit."""
