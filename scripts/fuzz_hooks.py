"""schemathesis hooks for scripts/fuzz: the one check twinshop adds.

schemathesis's own `positive_data_acceptance` check knows statuses only:
`[[operations]]` in scripts/fuzz.toml lets a schema-valid `POST /v1/orders`
get a 400, but a 400 is also what a wrongly refused `quantity: 2.0` gets.
`documented_refusals` narrows each such status to the problem `code` (and,
for a `validation_failed`, to the one field rule) that docs/api.md documents
for a request the schema cannot rule out. It reads its table from
`[checks.documented_refusals.allowed]` in scripts/fuzz.toml: operationId ->
entries "STATUS code" or "STATUS validation_failed FIELD-REGEX: MESSAGE".
Anything else a schema-valid request gets, other than 2xx, fails the run.
"""

from __future__ import annotations

import json
import re

import schemathesis

# The coverage phase's probes of the request's shape (wrong method, missing
# header, ...) are not schema-valid requests; schemathesis's own check skips
# them the same way.
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case


class Rule:
    def __init__(self, text: str) -> None:
        status, _, rest = text.partition(" ")
        self.text = text
        self.status = int(status)
        code, _, field_rule = rest.partition(" ")
        self.code = code
        self.field = self.message = None
        if field_rule:
            field, _, message = field_rule.partition(": ")
            self.field = re.compile(field)
            self.message = message

    def matches(self, status: int, problem: dict) -> bool:
        if status != self.status or problem.get("code") != self.code:
            return False
        if self.field is None:
            return True
        errors = problem.get("errors") or []
        return bool(errors) and all(
            self.field.fullmatch(str(e.get("field", ""))) and e.get("message") == self.message for e in errors
        )


@schemathesis.check
class documented_refusals:
    """A schema-valid request gets 2xx, or a refusal its operation documents
    for a request the schema cannot rule out."""

    def __init__(self, *, allowed: dict[str, list[str]] | None = None) -> None:
        self.allowed = {op: [Rule(t) for t in texts] for op, texts in (allowed or {}).items()}

    def after_response(self, ctx, response, case) -> None:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
            return
        if response.status_code < 400 or response.status_code >= 500:
            return
        operation = case.operation.definition.raw.get("operationId", case.operation.label)
        try:
            problem = json.loads(response.content or b"{}")
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        rules = self.allowed.get(operation, [])
        if any(rule.matches(response.status_code, problem) for rule in rules):
            return
        documented = "; ".join(r.text for r in rules) or "none"
        raise AssertionError(
            f"Schema-valid request refused with {response.status_code} {problem.get('code')!r}, "
            f"which {operation} does not document for a schema-valid request (allowed: {documented})"
        )
