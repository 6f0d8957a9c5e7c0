"""The embedded default's tiny base model (alpha.demo.tiny_model): option labels are single tokens whatever the
corpus, check_label_tokens names the offenders, and build() saves a deterministic checkpoint that reloads
through the Auto classes with the Llama-2 chat template."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.core import chat
from alpha.demo import tiny_model
from alpha.demo.tiny_model import LABELS, check_label_tokens, train_tokenizer

# no option label occurs in this corpus, bare or after a space (all lower case, no "Yes"/"No")
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "we like green tea and cake"] * 5

SMALL = dict(vocab_size=500, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
             max_position_embeddings=64, seed=7)


def single(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"]) == 1


def test_corpus_has_no_labels():
    words = {w for text in CORPUS for w in text.split()}
    assert not words & set(LABELS)


def test_labels_are_single_tokens_even_when_the_corpus_lacks_them():
    tok = train_tokenizer(CORPUS, 400)
    for label in LABELS:
        assert single(tok, label), label
        assert single(tok, " " + label), " " + label
        # and the two forms are different tokens
        assert tok(label, add_special_tokens=False)["input_ids"] != tok(" " + label, add_special_tokens=False)["input_ids"]
    check_label_tokens(tok)  # does not raise
    assert len(tok) <= 400
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert tok.chat_template == chat.LLAMA2_TEMPLATE and tok.padding_side == "left"


def test_labels_are_single_tokens_with_an_empty_corpus():
    check_label_tokens(train_tokenizer([], 400))


def test_check_label_tokens_names_the_offenders():
    # 256 byte symbols + 4 special tokens: no room for a single merge
    tok = train_tokenizer(CORPUS, 260)
    assert len(tok) == 260
    spaced = [" " + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    with pytest.raises(ValueError) as err:
        check_label_tokens(tok)
    assert str(err.value) == f"option labels that are not single tokens: {spaced + ['Yes', ' Yes', 'No', ' No']!r}"


def test_corpus_streams_sample_messages_then_extra_texts(tmp_path):
    schema = pa.schema([("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))])
    rows = [{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]},
            {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "s.parquet", row_group_size=1)
    assert list(tiny_model.corpus([tmp_path / "s.parquet"], ["extra"], batch_rows=1)) == ["q1", "a1", "q2", "a2", "extra"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    reports = [tiny_model.build(root / name, CORPUS, **SMALL) for name in ("one", "two")]
    return root, reports


def test_build_reloads_through_the_auto_classes(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, (report, _) = built
    out = root / "one"
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tok.chat_template == chat.LLAMA2_TEMPLATE
    assert chat.template_for(None, tok) == chat.LLAMA2_TEMPLATE
    check_label_tokens(tok)
    n = len(tok)
    assert n <= SMALL["vocab_size"]
    assert model.config.vocab_size == n == model.get_input_embeddings().num_embeddings
    assert model.get_output_embeddings().weight.shape[0] == n
    assert model.config.model_type == "llama"
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (32, 1, 2)
    assert model.config.intermediate_size == 64 and model.config.max_position_embeddings == 64
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert report == {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": n,
                      "hidden_size": 32, "layers": 1}
    # the saved tokenizer renders and encodes chats like the in-memory one
    messages = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "sat"}]
    assert chat.render(tok, messages, chat.template_for(None, tok)) == "<s>[INST] the cat [/INST] sat </s>"


def test_build_is_deterministic(built):
    root, (first, second) = built
    assert first == second
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (root / "one" / name).read_bytes() == (root / "two" / name).read_bytes(), name


def test_build_seed_changes_the_weights(built, tmp_path):
    root, _ = built
    tiny_model.build(tmp_path / "other", CORPUS, **{**SMALL, "seed": SMALL["seed"] + 1})
    assert (tmp_path / "other" / "tokenizer.json").read_bytes() == (root / "one" / "tokenizer.json").read_bytes()
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != (root / "one" / "model.safetensors").read_bytes()
