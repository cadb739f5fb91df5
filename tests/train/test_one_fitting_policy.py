"""One input-fitting policy: the same over-long pairs become the same token ids through train-rm's data path, through
the bt reward, and are counted alike by `realm data inspect` (chat template and sentence-pair formats)."""

from __future__ import annotations

import json

import pytest
from support.rm_helpers import write_recipe
from typer.testing import CliRunner

from realm_cli.recipes import recipe as recipes
from realm_cli.rewards import rm as rmlib
from realm_cli.train.loading import load_pairs, load_tokenizer_and_config

MAX_LENGTH = 64


def S(c):
    return {"role": "system", "content": c}


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


ROWS = [
    # fits: nothing cut
    {"prompt": [U("Name a colour.")], "chosen": "Blue.", "rejected": "Seven."},
    # a long history: the oldest turns go (the system message stays), responses whole
    {"prompt": [S("Be brief."), U("old question " * 20), A("old answer " * 20), U("And now, tea or coffee?")],
     "chosen": "Tea, mostly in the afternoon.", "rejected": "No."},
    # one long prompt turn and a long chosen response: the sides are fitted independently, as each is scored
    {"prompt": [U("Some background on rivers. " * 30 + "Which river is longest?")],
     "chosen": "The Nile, by most measurements, " * 20, "rejected": "The Amazon."},
    # a long response only: its tail goes, the question stays whole
    {"prompt": [U("Tell me about jazz.")], "chosen": "Jazz is a music of improvisation. " * 30, "rejected": "Later."},
    # multi-turn and both responses long
    {"prompt": [U("hi"), A("hello, how can I help?"), U("Explain chess openings " * 15)],
     "chosen": "Openings control the centre. " * 25, "rejected": "Just move pieces around randomly. " * 25},
    # a system message that alone fills the budget: training drops it (counted); scoring still fits it
    {"prompt": [S("You must follow these very long rules. " * 40), U("ok?")], "chosen": "Yes.", "rejected": "No."},
]


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


@pytest.fixture
def gpt2_rm(tmp_path, tiny_gpt2_dir):
    """The tiny GPT-2 (SmolLM2's tokenizer and chat template) with a saved single-logit head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "gpt2-rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_gpt2_dir, num_labels=1).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(out)
    return str(out)


def _train_path(tmp_path, model, data):
    """train-rm's data path up to the columns handed to TRL: tokenizer, format, loader with the fitter, encoding."""
    recipe = recipes.load(str(write_recipe(tmp_path / "r.yaml", model, data, tmp_path / "out",
                                           max_length=MAX_LENGTH, validation_split=0.0)))
    tokenizer, config = load_tokenizer_and_config(recipe.model)
    fmt = rmlib.RMFormat(tokenizer, rmlib.model_max_length(config, tokenizer, recipe.data.max_length))
    return fmt, load_pairs(recipe, fmt, encode_validation=False)


def _bt_reward_ids(monkeypatch, rm_dir, prompts, responses):
    """The ids the bt reward feeds its model (caught on the way into ``score_ids``)."""
    from realm_plugins.rewards.bt import BTReward

    seen, real = [], rmlib.score_ids

    def spy(model, seqs, *args, **kwargs):
        seen.extend(list(s) for s in seqs)
        return real(model, seqs, *args, **kwargs)

    monkeypatch.setattr(rmlib, "score_ids", spy)
    reward = BTReward(BTReward.Config(model=rm_dir, max_length=MAX_LENGTH, precision="fp32"))
    reward.score(prompts, responses)
    return seen, reward.rm.format


@pytest.mark.parametrize("kind", ["pair", "chat_template"])
def test_training_and_the_bt_reward_fit_the_same_pairs_to_the_same_ids(kind, tmp_path, monkeypatch, pairs_file,
                                                                     tiny_bert_dir, tiny_gpt2_dir, gpt2_rm):
    base, rm_dir = (tiny_bert_dir, tiny_bert_dir) if kind == "pair" else (tiny_gpt2_dir, gpt2_rm)
    fmt, pairs = _train_path(tmp_path, base, pairs_file)
    assert fmt.format == kind
    report = pairs.splits.report.splits["train"].to_json()
    assert report == {"records": 6, "kept": 5, "truncated": 4, "dropped": 1}  # never a silent drop
    train = pairs.splits.train
    prompts = [r.prompt for r in train]
    seen, scoring_fmt = _bt_reward_ids(monkeypatch, rm_dir, prompts + prompts,
                                       [r.chosen for r in train] + [r.rejected for r in train])
    assert scoring_fmt.format == kind and scoring_fmt.max_length == MAX_LENGTH
    assert seen == pairs.train["chosen_ids"] + pairs.train["rejected_ids"]  # identical token ids, side by side
    assert all(len(ids) <= MAX_LENGTH for ids in seen)
    assert pairs.train["length"] == [max(len(c), len(j)) for c, j in zip(pairs.train["chosen_ids"],
                                                                          pairs.train["rejected_ids"])]

    # What was cut, per side, follows the one order.
    by_chosen = {r.chosen: r for r in train}
    history = by_chosen["Tea, mostly in the afternoon."]
    fitted = fmt.fit(history.prompt, history.chosen)
    assert fitted.cut.turns == 2 and fitted.cut.response_tokens == 0
    assert fitted.prompt == [S("Be brief."), U("And now, tea or coffee?")]
    rivers = by_chosen["The Nile, by most measurements, " * 20]
    long_side, short_side = fmt.fit(rivers.prompt, rivers.chosen), fmt.fit(rivers.prompt, rivers.rejected)
    assert long_side.cut.prompt_tokens > short_side.cut.prompt_tokens > 0  # each side as it is scored alone
    assert short_side.response == "The Amazon." and long_side.response != rivers.chosen
    assert long_side.prompt[-1]["content"].endswith("Which river is longest?")  # the head goes, the question stays
    jazz = by_chosen["Jazz is a music of improvisation. " * 30]
    fitted = fmt.fit(jazz.prompt, jazz.chosen)
    assert fitted.prompt == jazz.prompt and fitted.cut.prompt_tokens == 0 and fitted.cut.response_tokens > 0

    # The pair training dropped is still scored by the bt reward, fitted by the last resort and flagged as such.
    dropped = ROWS[-1]
    fitted = scoring_fmt.fit(dropped["prompt"], dropped["chosen"])
    assert not fitted.fits and len(fitted.ids) <= MAX_LENGTH and fitted.prompt[-1] == U("ok?")
    assert _bt_reward_ids(monkeypatch, rm_dir, [dropped["prompt"]], [dropped["chosen"]])[0] == [fitted.ids]


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_gpt2_dir"])
def test_data_inspect_counts_as_train_rm_fits(model, request, tmp_path, pairs_file):
    from realm_cli.cli import build_app

    path = request.getfixturevalue(model)
    _, pairs = _train_path(tmp_path, path, pairs_file)
    result = CliRunner().invoke(build_app(), ["data", "inspect", str(pairs_file), "--tokenizer", path,
                                              "--max-length", str(MAX_LENGTH), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    train = pairs.splits.report.splits["train"]
    assert info["length_fitting"] == {"max_length": MAX_LENGTH, "overlong": "truncate", "ok": 1,
                                      "truncated": train.truncated, "dropped": train.dropped}
    fmt = rmlib.RMFormat(rmlib.load_tokenizer(path, path), MAX_LENGTH)
    longest = max(max(fmt.count(r["prompt"], r["chosen"]), fmt.count(r["prompt"], r["rejected"])) for r in ROWS)
    assert info["lengths"]["input"]["p100"] == longest  # one token counter
