"""Adaptation strategies: one small class each over ``Strategy``, found by name in one registry."""

from .base import (
                   ALIASES,
                   STRATEGIES,
                   Strategy,
                   base_name,
                   create_strategy,
                   list_strategies,
                   register_alias,
                   register_strategy,
                   split_entries,
                   split_entry,
                   strategy_help,
)
from .runner import fit_model, fit_without_examples, prepare_model

__all__ = ["ALIASES", "STRATEGIES", "Strategy", "base_name", "create_strategy", "fit_model", "fit_without_examples",
           "list_strategies", "prepare_model", "register_alias", "register_strategy", "split_entries", "split_entry",
           "strategy_help"]
