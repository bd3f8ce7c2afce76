"""API schemas (pydantic), kept apart from the tables and the domain values."""
