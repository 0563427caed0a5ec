"""Static check of a policy's source, before it costs an evaluation.

`check_source` reports every problem it finds, each as a `Diagnostic` with a rule id, a position
and a message written for the LLM that has to fix the code: what is not allowed, why, and what to
write instead. It is a filter that gives good feedback, not the security wall (docs/DESIGN.md
§4): the restricted runtime and the OS sandbox enforce the same rules again. It runs on the host
only; the sandbox image never imports it.

Checks, in order (`check`):
1. size (`source-too-large`), then parsing (`syntax`); either failure ends the check, since
   nothing else can be said about source that does not parse;
2. our AST rules, one module per topic, run in one walk over the tree: names starting with "_"
   (`names`), imports and module attributes (`modules`), attribute names and str.format
   templates (`attributes`), builtins and getattr & co. (`builtins`, with `scopes` telling the
   policy's own names from the builtins), class factories (`factories`), unsupported syntax
   (`syntax`), then the act contract (`contract`);
3. the compiler's own late errors ('return' outside function, duplicate argument, ...) as
   `syntax`;
4. RestrictedPython's transformer, the one the runtime compiles with; a finding of its that our
   rules did not already report on that line becomes a `restricted` diagnostic (`compiler`).

Rule ids: `diagnostics.RuleId`. Positions: see `diagnostics`.

Deliberately allowed: `global` (module state is part of the policy contract), lambdas, nested
functions, classes with `__init__` and comparison methods, generators other than `act`,
try/except, f-strings, `obj.attr += 1` and annotated assignments (see PolicyTransformer).
"""

from sandbox.checker.check import check_source
from sandbox.checker.diagnostics import RULE_IDS, RuleId, format_report

__all__ = ["RULE_IDS", "RuleId", "check_source", "format_report"]
