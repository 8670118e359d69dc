"""The race: strategies × label budgets × seeds on identical splits, stored, analysed, advised."""

from .advisor import Advice, advise, logme
from .analysis import Row, TransferVerdict, negative_transfer, recommend, summarize
from .grid import DEFAULT_STRATEGIES, RaceSpec, RunSpec, default_budgets
from .runner import prepare_race, run_race
from .store import ResultStore

__all__ = ["DEFAULT_STRATEGIES", "Advice", "RaceSpec", "ResultStore", "Row", "RunSpec", "TransferVerdict", "advise",
           "default_budgets", "logme", "negative_transfer", "prepare_race", "recommend", "run_race", "summarize"]
