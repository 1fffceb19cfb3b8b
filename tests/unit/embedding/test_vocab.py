"""The project's own tokenizers: reproducible, whole-word tokens for the corpus, bytes for the rest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

from services.embedding import vocab

CORPUS = ["a photo of a red circle", "something green", "a blue square", "yellow star"]


def test_merges_are_stable_and_make_whole_words() -> None:
    words = Counter({"circle": 3, "square": 2, "star": 2})
    assert vocab.learn_merges(words) == vocab.learn_merges(Counter(dict(reversed(words.items()))))
    tok = vocab.clip_tokenizer(CORPUS, max_length=16)
    assert tok.tokenize("a red circle") == ["a</w>", "red</w>", "circle</w>"]


def test_unknown_words_fall_back_to_pieces_not_unk() -> None:
    tok = vocab.clip_tokenizer(CORPUS, max_length=16)
    ids = tok("a zebra ☂")["input_ids"]
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True) == "a zebra ☂"


def test_both_tokenizers_save_and_load_through_auto_tokenizer(tmp_path: Path) -> None:
    for name, tok in [("clip", vocab.clip_tokenizer(CORPUS, max_length=16)),
                      ("siglip", vocab.siglip_tokenizer(CORPUS, max_length=16)),
                      ("clap", vocab.clap_tokenizer(CORPUS, max_length=16))]:
        tok.save_pretrained(str(tmp_path / name))
        loaded = AutoTokenizer.from_pretrained(str(tmp_path / name))
        assert loaded("a red circle")["input_ids"] == tok("a red circle")["input_ids"]
        assert loaded.model_max_length == 16


def test_siglip_tokenizer_appends_eos_and_pads() -> None:
    tok = vocab.siglip_tokenizer(CORPUS, max_length=8)
    enc = tok(["a red circle"], padding="max_length", max_length=8)
    ids = enc["input_ids"][0]
    assert len(ids) == 8 and ids[3] == tok.eos_token_id and ids[4:] == [tok.pad_token_id] * 4


def test_clap_tokenizer_is_roberta_shaped_and_lower_cases(tmp_path: Path) -> None:
    tok = vocab.clap_tokenizer(["three short high beeps", "a low hum"], max_length=8)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)  # ClapTextConfig's defaults
    tok.save_pretrained(str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert loaded.convert_ids_to_tokens(loaded("Three SHORT beeps")["input_ids"]) == [
        "<s>", "Ġthree", "Ġshort", "Ġbeeps", "</s>"]
    enc = loaded(["a low hum", "three short high beeps"], padding=True)
    assert enc["input_ids"][0][-2:] == [loaded.eos_token_id, loaded.pad_token_id]  # <s> a low hum </s> <pad>
    assert enc["attention_mask"][0] == [1, 1, 1, 1, 1, 0]
