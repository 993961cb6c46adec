"""docs/METRICS.md is generated from the catalogues; this keeps the committed copy honest."""

from __future__ import annotations

from pathlib import Path

from perfpulse.collectors.base import registry
from perfpulse.metrics_doc import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "METRICS.md"


def test_committed_reference_matches_the_catalogues() -> None:
    assert DOC.read_text() == render(), "docs/METRICS.md is stale: run `make docs` and commit it"


def test_every_metric_of_every_collector_is_listed() -> None:
    text = render()
    for name, cls in registry().items():
        assert f"\n## {name}\n" in text
        for spec in cls.catalogue:
            assert f"| `{spec.name}` |" in text
