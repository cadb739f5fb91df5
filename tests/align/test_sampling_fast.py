"""realm's sampler (length-sorted batches, rows dropped from the batch at their EOS) keeps plain ``generate()``'s
results: greedy token ids per prompt, job order, the ``share`` split, responses cut at the first EOS, and seeded
sampling that repeats and tends to greedy as the temperature (or top-p) goes to zero."""

from __future__ import annotations

import pytest
from support.align_toys import char_llama_dir, one_thread  # noqa: F401 - fixtures

from realm_cli.align import decoding, sampling, shards

# very different lengths (1 to 36 words, under max_prompt_tokens), so length-sorted batches are not input order
WORDS = "the quick brown fox jumps over a lazy dog while seven tired cats watch from the warm red roof".split()
PROMPTS = [[{"role": "user", "content": " ".join((WORDS * 2)[:n])}] for n in (36, 1, 12, 3, 22, 6, 2, 17)]


def load(model_dir):
    from realm_cli.align import policy
    from realm_cli.recipes.recipe import ModelConfig

    cfg = ModelConfig(name=model_dir, dtype="float32")
    tokenizer = policy.load_tokenizer(cfg)
    return policy.load_model(cfg, tokenizer), tokenizer


def plain_greedy(model, tokenizer, query: list[int], max_new_tokens: int, eos_ids: list[int]) -> list[int]:
    """One prompt alone through ``generate()`` (no padding), cut after its first EOS."""
    import torch

    ids = torch.tensor([query])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, temperature=None, top_p=None, top_k=None, eos_token_id=eos_ids,
                         pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    ends = [i for i, t in enumerate(out) if t in eos_ids]
    return out[: ends[0] + 1] if ends else out


def with_early_eos(model, tokenizer, settings) -> list[int]:
    """Make a token the model emits at many different steps an extra EOS, so greedy responses end at different
    steps (rows leave their batches at different times) and some never do."""
    first = sampling.sample(model, tokenizer, PROMPTS, settings=settings, greedy=True).response_ids
    ends = lambda t: {r.index(t) if t in r else None for r in first}  # noqa: E731
    extra = max(sorted({t for r in first for t in r}), key=lambda t: len(ends(t)))
    model.generation_config.eos_token_id = [model.generation_config.eos_token_id, extra]
    return sampling._eos_ids(model, tokenizer)


@pytest.fixture(params=["char_llama_dir", "tiny_llama_dir", "tiny_gpt2_dir"])
def policy_model(request, tmp_path_factory, one_thread):
    """A tiny random model (Llama with a character vocabulary or with SmolLM2's tokenizer and chat template; GPT-2,
    whose learned absolute positions catch position ids that are off for left-padded rows) re-initialised with
    untied, wider-spread weights: the tied fixtures' greedy output only repeats one token, whatever the prompt."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base = request.getfixturevalue(request.param)
    cfg = AutoConfig.from_pretrained(base)
    cfg.tie_word_embeddings, cfg.initializer_range = False, 0.3
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("lively")
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return load(str(out))


@pytest.mark.parametrize("drop_rows", [True, False], ids=["hand-loop", "generate-fallback"])
def test_greedy_equals_plain_generate_per_prompt_in_job_order(policy_model, drop_rows, monkeypatch):
    model, tokenizer = policy_model
    settings = sampling.Sampling(max_new_tokens=12, batch_size=3)
    eos_ids = with_early_eos(model, tokenizer, settings)
    if not drop_rows:
        monkeypatch.setattr(sampling, "can_drop_rows", lambda model: False)
    out = sampling.sample(model, tokenizer, PROMPTS, k=2, settings=settings, greedy=True)
    assert out.prompt_index == [i for i in range(len(PROMPTS)) for _ in range(2)]
    templated = [tokenizer(sampling.chat_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
                 for p in PROMPTS]
    assert out.query_ids == [templated[i] for i in out.prompt_index]
    assert len({len(q) for q in templated}) == len(PROMPTS)
    expected = [plain_greedy(model, tokenizer, templated[i], settings.max_new_tokens, eos_ids)
                for i in out.prompt_index]
    assert out.response_ids == expected
    lengths = {len(r) for r in expected}
    assert len(lengths) > 2 and settings.max_new_tokens in lengths  # rows ended at several steps, some never
    assert out.texts == [tokenizer.decode(r, skip_special_tokens=True).strip() for r in expected]


def test_both_shares_together_are_the_unshared_result(policy_model):
    model, tokenizer = policy_model
    settings = sampling.Sampling(max_new_tokens=10, batch_size=4)
    whole = sampling.sample(model, tokenizer, PROMPTS, k=3, settings=settings, greedy=True)
    parts = [sampling.sample(model, tokenizer, PROMPTS, k=3, settings=settings, greedy=True, share=(r, 2))
             for r in (0, 1)]
    jobs = [i for i in range(len(PROMPTS)) for _ in range(3)]
    assert [p.prompt_index for p in parts] == [jobs[0::2], jobs[1::2]]
    for field in ("prompt_index", "query_ids", "response_ids", "texts"):
        assert shards.interleave([getattr(p, field) for p in parts]) == getattr(whole, field)


def test_sampled_responses_end_at_their_first_eos_and_repeat_with_the_seed(char_llama_dir, one_thread):
    model, tokenizer = load(char_llama_dir)
    settings = sampling.Sampling(max_new_tokens=16, batch_size=5, temperature=1.0, top_p=1.0)
    eos_ids = sampling._eos_ids(model, tokenizer)
    runs = [sampling.sample(model, tokenizer, PROMPTS, k=4, settings=settings, seed=s) for s in (7, 7, 8)]
    assert runs[0] == runs[1] and runs[0].response_ids != runs[2].response_ids
    ended = 0
    for response in runs[0].response_ids:
        assert all(t not in eos_ids for t in response[:-1])
        assert response[-1] in eos_ids or len(response) == settings.max_new_tokens
        ended += response[-1] in eos_ids and len(response) < settings.max_new_tokens
    assert 0 < ended < len(runs[0].response_ids)  # a batch whose rows end at different steps


@pytest.mark.parametrize("temperature,top_p", [(1e-4, 1.0), (1.0, 1e-6)])
def test_sampling_tends_to_greedy(policy_model, temperature, top_p):
    model, tokenizer = policy_model
    greedy = sampling.sample(model, tokenizer, PROMPTS, k=2, greedy=True,
                             settings=sampling.Sampling(max_new_tokens=8, batch_size=4))
    cold = sampling.sample(model, tokenizer, PROMPTS, k=2, seed=0, settings=sampling.Sampling(
        max_new_tokens=8, batch_size=4, temperature=temperature, top_p=top_p))
    assert cold.response_ids == greedy.response_ids


def test_bf16_autocast_samples_from_a_bf16_copy_with_autocasts_tokens(policy_model, monkeypatch):
    """Under CPU bf16 autocast the sampler decodes with a copy whose linear weights are bf16: the same greedy tokens
    as autocast over the fp32 weights (the same bf16 operands reach each matmul), the policy itself untouched."""
    import torch

    model, tokenizer = policy_model
    settings = sampling.Sampling(max_new_tokens=10, batch_size=4)
    copies = []
    real_copy = sampling.bf16_matmul_copy
    monkeypatch.setattr(sampling, "bf16_matmul_copy", lambda m: copies.append(real_copy(m)) or copies[-1])
    fast = sampling.sample(model, tokenizer, PROMPTS, k=2, settings=settings, greedy=True,
                           autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    assert len(copies) == 1
    linear = [m for m in copies[0].modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    assert copies[0].get_input_embeddings().weight.dtype == torch.float32  # the residual stream stays fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    monkeypatch.setattr(sampling, "_wants_bf16_copy", lambda m: False)
    plain = sampling.sample(model, tokenizer, PROMPTS, k=2, settings=settings, greedy=True,
                            autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    assert fast.response_ids == plain.response_ids
    assert not sampling._wants_bf16_copy(model)  # outside autocast: no copy, fp32 as asked


def test_the_bf16_copy_of_a_lora_policy_is_merged_and_scores_like_it(tiny_llama_dir, one_thread):
    """A LoRA policy's copy has its adapter folded in (one matmul per layer) and gives the adapter's logits to bf16
    rounding; the policy keeps its adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load(tiny_llama_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    copy = sampling.bf16_matmul_copy(peft_model)
    assert not any("lora" in n for n, _ in copy.named_parameters())
    assert any("lora" in n for n, _ in peft_model.named_parameters())
    ids = torch.tensor([tokenizer("a small test of the copy")["input_ids"]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = peft_model(input_ids=ids).logits.float()
        got = copy(input_ids=ids).logits.float()
    assert torch.allclose(got, want, atol=0.05 * want.abs().max().item())


@pytest.mark.parametrize("temperature,top_p", [(0.8, 0.95), (1.0, 0.5), (0.3, 0.99), (1.5, 0.999), (1.0, 1e-6)])
def test_nucleus_candidates_are_the_warpers_distribution(temperature, top_p):
    """The kept tokens and their probabilities equal ``softmax(TopP(Temperature(logits)))``, the distribution
    ``generate()`` samples from: peaked rows (a few tokens hold the mass) and flat ones (hundreds kept, past the
    first 64 sorted), in one batch."""
    import torch
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopPLogitsWarper)

    gen = torch.Generator().manual_seed(0)
    spread = torch.tensor([0.2, 1.0, 3.0, 8.0]).repeat_interleave(3)[:, None]
    logits = torch.randn((12, 5000), generator=gen) * spread
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)])
    assert decoding.nucleus_settings(warpers) == (temperature, top_p, 1)
    expected = torch.softmax(warpers(None, logits.clone()), dim=-1)
    ids, probs = decoding.nucleus_candidates(logits, temperature, top_p)
    got = torch.zeros_like(expected).scatter_add_(1, ids, probs)
    assert torch.allclose(got, expected, atol=1e-6)
    kept = (expected > 0).sum(-1)
    assert kept.min() >= 1 and (top_p < 0.9 or kept.max() > 64)  # the flat rows needed more than one round
    draws = decoding.nucleus_sample(logits, temperature, top_p)
    assert bool((expected.gather(1, draws[:, None]) > 0).all())  # every draw is a kept token


def test_nucleus_sampling_frequencies_follow_the_probabilities():
    import torch

    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.0, -1.0, -3.0]]).repeat(20000, 1)
    ids, probs = decoding.nucleus_candidates(logits[:1], 1.0, 0.9)
    counts = torch.bincount(decoding.nucleus_sample(logits, 1.0, 0.9), minlength=6).float() / len(logits)
    want = torch.zeros(6).scatter_add_(0, ids[0], probs[0])
    assert want[-1] == 0 and counts[-1] == 0  # cut by top-p
    assert torch.allclose(counts, want, atol=0.015)  # ~4 standard errors at 20,000 draws


def test_only_temperature_and_top_p_take_the_nucleus_path():
    from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

    assert decoding.nucleus_settings(LogitsProcessorList([TopPLogitsWarper(0.9)])) == (1.0, 0.9, 1)
    for extra in (TopKLogitsWarper(5), RepetitionPenaltyLogitsProcessor(1.2)):
        assert decoding.nucleus_settings(LogitsProcessorList([TemperatureLogitsWarper(0.7), extra,
                                                              TopPLogitsWarper(0.9)])) is None


def test_the_growing_cache_layer_returns_what_concatenation_does():
    """Prefill, decode steps past the buffer's spare room, rows dropped and copied: the keys and values equal
    ``DynamicLayer``'s (which concatenates)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    torch.manual_seed(0)
    plain, growing = DynamicLayer(), decoding.growing_layer()()
    steps = [torch.randn(4, 3, 7, 8)] + [torch.randn(4, 3, 1, 8) for _ in range(70)]
    rows = 4
    for i, k in enumerate(steps):
        k = k[:rows]
        for layer in (plain, growing):
            keys, values = layer.update(k, -k)
            assert torch.equal(keys, plain.keys) and torch.equal(values, plain.values)
        if i in (10, 40):
            index = torch.tensor([0, 2, 2]) if i == 10 else torch.tensor([1, 2])
            for layer in (plain, growing):
                layer.batch_select_indices(index)
            rows = len(index)
    assert growing.get_seq_length() == 7 + 70 and growing.keys.shape[0] == 2
