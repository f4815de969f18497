"""RAG on Elasticsearch: our embedding server for vectors, an OpenAI-compatible chat model for answers.

``python -m rag setup|ingest|search|ask|serve``; see docs/RAG.md. ``rag`` talks to the
embedding server over HTTP only and never imports ``server``.
"""
