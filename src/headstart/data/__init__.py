"""The data layer: tasks, readers, named examples, splits, label budgets, descriptions."""

from .describe import describe, format_description
from .examples import list_examples, load_example
from .external import align_test
from .load import load_task
from .readers import from_arrays, read_image_folder, read_table
from .splits import (
                     VAL_FRACTION,
                     VALIDATED_FROM,
                     Splits,
                     budget_indices,
                     draw,
                     holdout,
                     make_splits,
                     parse_budget,
                     split_budget,
                     stratified_subset,
)
from .task import Task
from .unlabelled import load_unlabelled

__all__ = ["VALIDATED_FROM", "VAL_FRACTION", "Splits", "Task", "align_test", "budget_indices", "describe", "draw",
           "format_description",
           "from_arrays", "holdout", "list_examples", "load_example", "load_task", "load_unlabelled", "make_splits",
           "parse_budget", "read_image_folder", "read_table", "split_budget", "stratified_subset"]
