"""Providers: one package per upstream wire format, each pure translation plus a thin transport."""

__all__ = []
