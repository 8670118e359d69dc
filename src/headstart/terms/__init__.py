"""Loss terms added to a stage's data term: guards against forgetting, domain-adaptation losses, ...

One module per term with ``@register_term`` on its class (the package's modules are discovered).
"""

from .base import TERMS, Term, create_term, list_terms, register_term

__all__ = ["TERMS", "Term", "create_term", "list_terms", "register_term"]
