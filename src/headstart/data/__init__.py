"""The data layer: tasks, readers, named examples, splits, label budgets, descriptions."""

from .describe import describe, format_description
from .examples import list_examples, load_example
from .load import load_task
from .readers import from_arrays, read_image_folder, read_table
from .splits import Splits, budget_indices, draw, holdout, make_splits, parse_budget, val_budget
from .task import Task

__all__ = ["Splits", "Task", "budget_indices", "describe", "draw", "format_description", "from_arrays", "holdout",
           "list_examples", "load_example", "load_task", "make_splits", "parse_budget", "read_image_folder",
           "read_table", "val_budget"]
