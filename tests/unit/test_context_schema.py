"""Studio's form for a run's knobs has help text: every `EnduroContext` field is described.

The Agent Server serves `graph.get_context_jsonschema()`, which for a dataclass is
`TypeAdapter(EnduroContext).json_schema()`; the descriptions come from the fields' attribute
docstrings. The end-to-end check through `langgraph dev` is in
tests/integration/test_langgraph_dev.py.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from enduro.context import EnduroContext
from enduro.graph import build_graph


def test_every_context_field_has_a_description_in_the_served_schema() -> None:
    schema = build_graph().get_context_jsonschema()
    assert schema is not None
    properties = schema["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(EnduroContext)}
    undescribed = sorted(
        name for name, prop in properties.items() if not str(prop.get("description", "")).strip()
    )
    assert undescribed == [], f"context fields without a description: {undescribed}"
    # The text is the attribute docstring, units included.
    assert properties["max_usd"]["description"] == "Hard spend limit in US dollars."


def test_the_pydantic_config_is_not_a_field_and_costs_no_pydantic_import() -> None:
    assert "__pydantic_config__" not in {f.name for f in dataclasses.fields(EnduroContext)}
    code = "import sys, enduro.context; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
