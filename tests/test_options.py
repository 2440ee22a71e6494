"""Named options: matching, and the error a config typo gets."""

from __future__ import annotations

import pytest

from mednet.options import Option, choose

RULES = ("vote", "mean", "max", "weighted")


class Tie(Option):
    POSITIVE = "positive"
    NEGATIVE = "negative"


def test_spellings_that_match():
    assert choose(" Mean ", RULES, "fusion") == "mean"
    assert choose("logit-mean", ("mean", "logit_mean"), "aggregation") == "logit_mean"
    assert choose("LOGIT MEAN", ("mean", "logit_mean"), "aggregation") == "logit_mean"
    assert choose("AN", ("MG", "AN"), "class", normalise=False) == "AN"
    assert Tie.parse("Negative") is Tie.NEGATIVE and Tie.parse(Tie.POSITIVE) is Tie.POSITIVE
    assert choose(Tie.NEGATIVE, ("positive", "negative"), "tie") == "negative"


def test_the_message_names_the_option_lists_the_values_in_order_and_suggests_one():
    with pytest.raises(ValueError) as info:
        choose("wieghted", RULES, "fusion")
    assert (
        str(info.value)
        == "fusion: expected one of vote, mean, max, weighted, found 'wieghted'; did you mean 'weighted'?"
    )
    with pytest.raises(ValueError, match="did you mean 'logit_mean'"):
        choose("logit", ("mean", "logit_mean"), "aggregation")  # a truncated name still gets its suggestion
    with pytest.raises(ValueError, match="tie: expected one of positive, negative, found 'postive'; did you mean"):
        Tie.parse("postive", "tie")
    with pytest.raises(ValueError, match="expected one of MG, AN, found 'an'"):
        choose("an", ("MG", "AN"), "class", normalise=False)


def test_no_suggestion_for_an_unrelated_word():
    # MONAI's look_up_option suggests any option within 3 edits: 'max' for 'xyz'
    with pytest.raises(ValueError) as info:
        choose("xyz", RULES, "fusion")
    assert "did you mean" not in str(info.value)
