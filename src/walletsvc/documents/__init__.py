"""PDF rendering of issued documents, and the fonts it embeds (fonts/README.md)."""
