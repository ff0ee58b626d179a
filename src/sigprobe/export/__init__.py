"""Rendering results documents: the text and Markdown matrix, the reference (Markdown and HTML)."""
