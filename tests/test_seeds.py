"""tinymask seeds: bundles' cards pooled as mean (sd) over seeds."""

import copy
import json
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.cli import main as cli_main
from host.errors import UserError
from host.make import seeds

REFERENCE_CARD = Path(__file__).resolve().parents[1] / "models" / "tinymask" / "model_card.json"


def write_bundle(root: Path, name: str, card: dict) -> Path:
    folder = root / name / "tinymask"
    folder.mkdir(parents=True)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def seeded_cards(masked: list[float]) -> list[dict]:
    base = json.loads(REFERENCE_CARD.read_text())
    cards = []
    for seed, value in enumerate(masked):
        card = copy.deepcopy(base)
        card["training"]["seed"] = seed
        card["sha256"] = f"{seed + 1:064x}"  # another seed, another model
        card["door_expected"]["masked_admitted"] = value
        cards.append(card)
    return cards


def test_pools_the_published_cards_figures_over_seeds(tmp_path, capsys):
    masked = [0.91, 0.95, 0.93]
    runs = [write_bundle(tmp_path, f"run_{i}", c).parent for i, c in enumerate(seeded_cards(masked))]
    assert seeds.main([str(r) for r in runs] + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["bundles"]) == 3
    assert out["mean"]["masked adm."] == pytest.approx(statistics.fmean(masked))
    assert out["sd"]["masked adm."] == pytest.approx(statistics.stdev(masked))
    # figures every card shares pool to themselves with no spread
    reference = json.loads(REFERENCE_CARD.read_text())
    assert out["mean"]["int8 bytes"] == reference["model_bytes"]
    assert out["sd"]["int8 bytes"] == 0
    assert out["mean"]["openings, nobody there"] == reference["nobody"]["long_run"]["openings"]


def test_table_has_a_row_per_bundle_and_the_mean_row(tmp_path, capsys):
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(seeded_cards([0.9, 0.8]))]
    assert cli_main(["seeds", *map(str, runs)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 2 + 1  # header, rule, two bundles, the mean
    assert "85.00% (7.07)" in lines[-1]
    assert lines[-1].startswith("| mean (sd), 2 bundles")


def test_a_figure_some_cards_lack_says_how_many_it_pools(tmp_path, capsys):
    cards = seeded_cards([0.9, 0.8, 0.7])
    del cards[2]["nobody"]
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(cards)]
    seeds.main(list(map(str, runs)))
    assert "[2 of 3]" in capsys.readouterr().out


def test_bundles_of_different_designs_are_flagged(tmp_path, capsys):
    cards = seeded_cards([0.9, 0.8])
    cards[1]["training"]["arch"] = "tiny_cnn" if cards[0]["training"]["arch"] != "tiny_cnn" else "door_cnn_w"
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(cards)]
    seeds.main(list(map(str, runs)))
    assert "differ in arch" in capsys.readouterr().out


def test_bundles_trained_at_different_learning_rates_are_flagged(tmp_path, capsys):
    """door-small moved from 1e-3 to 2e-3: the reference and a new default build are two designs."""
    cards = seeded_cards([0.9, 0.8])
    cards[0]["training"]["learning_rate"], cards[1]["training"]["learning_rate"] = 1e-3, 2e-3
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(cards)]
    seeds.main(list(map(str, runs)))
    assert "differ in learning_rate" in capsys.readouterr().out


def test_bundles_calibrated_to_different_no_face_targets_are_flagged(tmp_path, capsys):
    cards = seeded_cards([0.9, 0.8])
    cards[1]["door_expected"]["target_no_face_admitted"] = 0.02
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(cards)]
    seeds.main(list(map(str, runs)))
    assert "differ in the threshold rule (--max-no-face)" in capsys.readouterr().out


def test_a_card_older_than_an_option_pools_with_cards_trained_without_it(tmp_path, capsys):
    cards = seeded_cards([0.9, 0.8, 0.7])
    for key, off in seeds.ADDED_LATER.items():
        cards[0]["training"].pop(key, None)
        cards[1]["training"][key] = off
    cards[2]["training"]["none_jigsaw"] = 0.3
    runs = [write_bundle(tmp_path, f"run_{i}", c) for i, c in enumerate(cards)]
    seeds.main(list(map(str, runs[:2])))
    assert "differ" not in capsys.readouterr().out
    seeds.main(list(map(str, runs)))
    assert "differ in none_jigsaw" in capsys.readouterr().out


def test_bad_folders_are_refused_with_one_line(tmp_path):
    with pytest.raises(UserError, match="no such bundle folder"):
        seeds.find_card(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no model_card.json"):
        seeds.find_card(tmp_path / "empty")
    card = seeded_cards([0.9])[0]
    write_bundle(tmp_path, "two", card)
    (tmp_path / "two" / "other").mkdir()
    (tmp_path / "two" / "other" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="holds 2 bundles"):
        seeds.find_card(tmp_path / "two")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_card.json").write_text("{not json")
    with pytest.raises(UserError, match="not a readable model card"):
        seeds.read_card(seeds.find_card(broken))
    one = write_bundle(tmp_path, "one", card)
    with pytest.raises(UserError, match="named twice"):
        seeds.main([str(one), str(one.parent)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=8))
def test_pooled_text_is_the_mean_and_sample_sd_of_what_is_present(values):
    text = seeds.pooled(values, "percent")
    present = [v for v in values if v is not None]
    if not present:
        assert text == "-"
        return
    mean_text = text.split("%")[0]
    assert float(mean_text) == pytest.approx(100 * statistics.fmean(present), abs=0.006)
    assert min(present) * 100 - 0.006 <= float(mean_text) <= max(present) * 100 + 0.006
    assert ("(" in text) == (len(present) > 1)
    assert ("of" in text) == (len(present) < len(values))


def test_a_copy_of_the_same_model_is_refused_and_damaged_fields_read_as_missing(tmp_path, capsys):
    """Found in review: a copied bundle pooled as a second seed, and a card with a list, NaN, infinity or a
    400-digit number where a figure or an object belongs was a traceback."""
    card = seeded_cards([0.9])[0]
    one, two = write_bundle(tmp_path, "one", card), write_bundle(tmp_path, "copy", card)
    with pytest.raises(UserError, match="hold the same model"):
        seeds.main([str(one), str(two)])
    damaged = []
    for i, (key, value) in enumerate([("training", [1]), ("door_expected", [1]), ("model_bytes", [1]),
                                      ("model_bytes", 10**400), ("door_threshold", float("nan")),
                                      ("training", None), ("door_expected", "x")]):
        bad = copy.deepcopy(card)
        bad[key] = value
        bad["sha256"] = f"{i + 100:064x}"
        (tmp_path / f"bad{i}").mkdir()
        damaged.append(write_bundle(tmp_path / f"bad{i}", "b", bad))
    assert seeds.main([str(one), *map(str, damaged)]) == 0
    out = capsys.readouterr().out
    assert "mean (sd), 8 bundles" in out and "[7 of 8]" in out and "[6 of 8]" in out
    assert seeds.main([str(one), *map(str, damaged), "--json"]) == 0
    assert "differ" in json.loads(capsys.readouterr().out)
