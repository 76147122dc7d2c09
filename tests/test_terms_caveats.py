"""The caveats shown when a user accepts a project name what each allowed use does not stop."""

from __future__ import annotations

from fedbench.node.terms import ProjectTerms, caveats


def test_training_caveats_name_both_models_and_the_boosted_trees_leak() -> None:
    found = caveats(ProjectTerms(uses=["train"]))
    assert any(c.startswith("Logistic regression (hetero_lr)") for c in found), found
    (trees,) = [c for c in found if "hetero_secureboost" in c]
    assert "which rows reach every tree node" in trees
    assert "guest running modified code can also learn the host's bin of each row" in trees


def test_no_training_caveat_without_the_train_use() -> None:
    found = caveats(ProjectTerms(uses=["psi"]))
    assert not any("hetero_secureboost" in c or "hetero_lr" in c for c in found), found
