"""The HTTP layer: thin routers, schemas, dependencies, and the one error-to-HTTP mapping."""
