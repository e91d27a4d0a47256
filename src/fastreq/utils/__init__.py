"""Policies and helpers used by the client: retry, rate limits, proxies, headers, validation."""
