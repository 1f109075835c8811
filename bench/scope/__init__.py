"""Scope: checking N targets against a scope of N entries, compiled against a naive double loop."""
