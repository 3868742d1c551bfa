"""The demo figures' titles name what the models were trained on (a reader compares figures of different runs)."""
from rnnlm.demolongrange import _trained_on


def test_agreement_title_names_training_distances_and_subject_relatives():
    assert _trained_on({"min_distance": 15, "max_distance": 30}) == "trained on distances 15..30"
    assert _trained_on({"max_distance": 30}) == "trained on distances 1..30"
    assert (_trained_on({"min_distance": 15, "max_distance": 30, "subject_relative_rate": 0.0})
            == "trained on distances 15..30, subject relatives 0")
