"""The HELP of the quality metrics says which F1 and which AUC they are."""

from __future__ import annotations

from tests.monitoring.conftest import Served


async def test_the_quality_metrics_say_f1_is_macro_averaged_and_how_auc_averages(
    served: Served,
) -> None:
    """The label value stays ``f1`` (part of the external contract); its HELP says it is the
    macro-averaged F1, which a reader took for scikit-learn's binary F1 (0.78 against 0.60)."""
    text = (await served.client.get("/metrics")).text
    helps = {
        line.split(" ")[2]: line
        for line in text.splitlines()
        if line.startswith("# HELP modelpilot_") and "performance" in line
    }
    model = helps["modelpilot_model_performance"]
    assert "f1, the macro-averaged F1" in model
    assert "one-vs-rest macro-averaged over the classes the labels hold" in model
    assert "macro-averaged F1" in helps["modelpilot_reference_performance"]
