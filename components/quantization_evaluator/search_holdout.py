"""The accuracy search's sample, held out of the gate.

The Quantizer's accuracy search chose its candidate by scoring it on RepresentativeDatasetGen's ``search_dataset``,
by default a sample of the eval split. A gate that scored those examples again would judge the candidate partly on
the examples it was chosen for, so the QuantizationEvaluator, given the same ``search_dataset``, leaves them out:
each example of the split is either searched on or gated on, never both. The quantized model's
``properties.SEARCH_SUMMARY`` says which sample and split the search used; a search on the gate's split without
the sample wired here is refused. The float model's metric on the search sample and on the gate's examples are
compared too: far apart, the search judged on examples unlike the gate's (rows the model trained on, say).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tfx.types import Artifact

from quantgate.components.representative_dataset_gen.storage import read_examples, read_manifest
from quantgate.components.shared import properties
from quantgate.components.shared.task_metrics import METRICS, PROBABILITIES, degradation


@dataclass(frozen=True)
class SearchHoldout:
    """The search sample wired into the evaluator: where it is, its split, and the records the gate leaves out
    (those of the sample when its split is the gate's, else none)."""

    uri: str
    artifact_id: int | None
    split: str
    num_examples: int
    records: frozenset[bytes] = field(default_factory=frozenset)

    def section(self, excluded_examples: int) -> dict[str, Any]:
        """``metrics.json``'s ``search_holdout``: the sample and how many of the split's examples were left out."""
        return {"uri": self.uri, "id": self.artifact_id, properties.SPLIT: self.split,
                properties.NUM_EXAMPLES: self.num_examples, "excluded_examples": excluded_examples}


def search_summary(quantized_model: Artifact) -> dict[str, Any] | None:
    """The Quantizer's ``properties.SEARCH_SUMMARY`` of ``quantized_model`` (``None``: no accuracy search)."""
    if not quantized_model.has_custom_property(properties.SEARCH_SUMMARY):
        return None
    return json.loads(quantized_model.get_string_custom_property(properties.SEARCH_SUMMARY))


def plan_holdout(quantized_models: Sequence[Artifact], search_dataset: Artifact | None,
                 split: str) -> SearchHoldout | None:
    """The holdout for a gate on ``split``; raises ``ValueError`` when a candidate was searched on ``split`` and
    its search sample is not the ``search_dataset`` wired here (or none is)."""
    for quantized_model in quantized_models:
        summary = search_summary(quantized_model)
        if summary is None or summary.get(properties.SPLIT) != split:
            continue
        if search_dataset is None or search_dataset.uri != summary["dataset_uri"]:
            got = "none is wired" if search_dataset is None else f"the wired one is {search_dataset.uri!r}"
            raise ValueError(
                f"QuantizationEvaluator: quantized_model {quantized_model.uri!r} (id {quantized_model.id}) was "
                f"chosen by an accuracy search on examples of split {split!r} (search_dataset "
                f"{summary['dataset_uri']!r}), the split this gate scores, but {got}: the gate would judge it on "
                "the examples it was chosen for. Wire the same search_dataset into the QuantizationEvaluator "
                "(search_dataset=RepresentativeDatasetGen.outputs['search_dataset']) so that they are left out")
    if search_dataset is None:
        return None
    manifest = read_manifest(search_dataset.uri)
    records = frozenset(read_examples(search_dataset.uri)) if manifest[properties.SPLIT] == split else frozenset()
    return SearchHoldout(uri=search_dataset.uri, artifact_id=search_dataset.id, split=manifest[properties.SPLIT],
                         num_examples=manifest[properties.NUM_EXAMPLES], records=records)


def search_fit_warning(candidate_name: str, summary: dict[str, Any] | None, float_values: dict[str, Any],
                       gate_description: str, output_kind: str = PROBABILITIES) -> str | None:
    """A warning when the float model's metric on the search sample and on the gate's examples differ by more
    than the search's own ``max_delta`` (in its ``delta_type``), or were computed on outputs read differently
    (``output_kind``): the search's verdicts may not carry over."""
    if not summary:
        return None
    searched_kind = summary.get("output_kind", PROBABILITIES)
    if searched_kind != output_kind:
        return (f"{candidate_name}: the accuracy search scored the model's outputs as {searched_kind!r} and this "
                f"gate as {output_kind!r}: its candidates were judged on other numbers; pass the same output_kind "
                "to the Quantizer's accuracy_search and to the QuantizationEvaluator")
    metric, searched = summary.get(properties.METRIC), summary.get("float_metric_value")
    gated = float_values.get(metric)
    if metric not in METRICS or searched is None or gated is None or not math.isfinite(gated):
        return None
    # How much "worse" the gate's examples are than the search's, both ways: a gap either way means the search
    # sample does not stand for the gate's examples.
    gap = max(abs(degradation(searched, gated, METRICS[metric], summary[properties.DELTA_TYPE]) or 0.0),
              abs(degradation(gated, searched, METRICS[metric], summary[properties.DELTA_TYPE]) or 0.0))
    if gap <= summary["max_delta"]:
        return None
    return (f"{candidate_name}: the float model's {metric} is {searched:.4g} on the accuracy search's sample (split "
            f"{summary.get(properties.SPLIT)!r}) and {gated:.4g} on {gate_description}, a {summary[properties.DELTA_TYPE]} "
            f"gap of {gap:.4g}, more than the search's max_delta {summary['max_delta']:g}: the search's verdicts "
            "may not carry over to the gate (the search judged on rows unlike the gate's: rows the model was "
            "trained on, or a sample too small to stand for the split); draw the search sample from unseen "
            "examples (RepresentativeDatasetGen search_split='eval' or a validation split) and make it larger")
