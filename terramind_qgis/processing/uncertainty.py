"""How-sure-the-model-is options of terramind:generate and terramind:segment (docs/uncertainty.md).

The backend writes the extra layers beside the main output (``<name>_confidence.tif``,
``<name>_entropy.tif``, ``<name>_spread.tif``); the toolbox loads them after the run like the
declared outputs, styled with the engine's .qml.
"""
from __future__ import annotations

from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterNumber

KINDS = ("confidence", "entropy", "spread")
DEFAULT_SAMPLES, MAX_SAMPLES = 4, 64


def add_parameters(algorithm, spread: bool) -> None:
    algorithm.addParameter(QgsProcessingParameterBoolean(
        "CONFIDENCE", algorithm.tr("Also write confidence and entropy of class outputs"), defaultValue=False))
    if spread:
        algorithm.addParameter(QgsProcessingParameterBoolean(
            "SPREAD", algorithm.tr("Also write the spread of generated values (costs N generations)"),
            defaultValue=False))
        algorithm.addParameter(QgsProcessingParameterNumber(
            "SPREAD_SAMPLES", algorithm.tr("Samples for the spread (N)"), QgsProcessingParameterNumber.Integer,
            defaultValue=DEFAULT_SAMPLES, minValue=2, maxValue=MAX_SAMPLES))


def choice(algorithm, parameters, context) -> dict:
    """`JobChoices.uncertainty`, i.e. JobSpec ``options.uncertainty`` ({} when nothing is asked for)."""
    chosen = {"confidence": algorithm.parameterAsBool(parameters, "CONFIDENCE", context)}
    if algorithm.parameterDefinition("SPREAD") is not None:
        chosen["spread"] = algorithm.parameterAsBool(parameters, "SPREAD", context)
        chosen["samples"] = algorithm.parameterAsInt(parameters, "SPREAD_SAMPLES", context)
    return chosen if chosen["confidence"] or chosen.get("spread") else {}
