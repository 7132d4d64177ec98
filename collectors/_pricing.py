"""Model list prices and the cost of one call, for the anthropic collector (``cost_usd``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftwatch._config import Config

__all__ = ["DEFAULT_PRICES", "Prices", "prices_for"]

_UNSEEN = object()

# List prices in USD per million tokens [input, output] by model-name prefix, longest prefix wins.
# Prices change: override or extend them with `prices:` in the config. Cache reads cost 0.1x input,
# cache writes 1.25x input.
DEFAULT_PRICES: dict[str, list[float]] = {
    "claude-opus-4-5": [5.0, 25.0],
    "claude-opus-4-6": [5.0, 25.0],
    "claude-opus-4-7": [5.0, 25.0],
    "claude-opus-4": [15.0, 75.0],
    "claude-sonnet-4": [3.0, 15.0],
    "claude-3-7-sonnet": [3.0, 15.0],
    "claude-haiku-4": [1.0, 5.0],
    "claude-3-5-haiku": [0.8, 4.0],
}


class Prices:
    """The default price table with ``overrides`` (the config's ``prices:``) on top.

    >>> Prices().cost("claude-sonnet-4-6", 1_000_000, 100_000, None, None)
    4.5
    >>> Prices({"claude-sonnet-4": [1.0, 1.0]}).cost("claude-sonnet-4-6", 1_000_000, 0, None, None)
    1.0
    >>> Prices().cost("gpt-5", 10, 10, None, None) is None
    True
    """

    def __init__(self, overrides: Mapping[str, Sequence[float]] | None = None) -> None:
        prices = {**DEFAULT_PRICES, **(overrides or {})}
        self._prices = sorted(prices.items(), key=lambda kv: -len(kv[0]))
        # Each model's prices once found (the longest matching prefix), so a call does no prefix scan.
        self._model_prices: dict[str, Any] = {}

    def cost(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read: int | None,
        cache_write: int | None,
    ) -> float | None:
        """List-price cost of one call, or None for a model without a known price."""
        if not model:
            return None
        prices = self._model_prices.get(model, _UNSEEN)
        if prices is _UNSEEN:
            prices = next((p for prefix, p in self._prices if model.startswith(prefix)), None)
            if len(self._model_prices) < 1024:  # model names are few; a flood of odd ones is not kept
                self._model_prices[model] = prices
        if prices is None:
            return None
        price_in, price_out = float(prices[0]), float(prices[1])
        tokens_in = (input_tokens or 0) + 0.1 * (cache_read or 0) + 1.25 * (cache_write or 0)
        return (tokens_in * price_in + (output_tokens or 0) * price_out) / 1e6


_last: tuple[Config, Prices] | None = None


def prices_for(config: Config) -> Prices:
    """The prices of ``config`` (built once per config object: the runtime's config rarely changes)."""
    global _last
    last = _last
    if last is None or last[0] is not config:
        last = _last = (config, Prices(config.prices))
    return last[1]
