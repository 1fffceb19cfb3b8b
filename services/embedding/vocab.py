"""Tokenizers built from a small corpus, for the models xmodal makes itself (no hub downloads here).

CLIP's (the shapes model), SigLIP's (tests) and CLAP's (RoBERTa's, the sounds model). All are byte-level
BPE tokenizers: every byte is in the vocabulary, so any text can be encoded (unknown words fall back to
smaller pieces, down to bytes), and the corpus words get merges until each is one token. The merges are
learned here rather than with ``tokenizers``' trainer because that trainer breaks ties between equally
frequent pairs differently from run to run, and the shipped models must be reproducible. All save and load
with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.

>>> tok = clip_tokenizer(["a red circle", "a blue square"], max_length=16)
>>> tok.convert_ids_to_tokens(tok("a red circle")["input_ids"])
['<|startoftext|>', 'a</w>', 'red</w>', 'circle</w>', '<|endoftext|>']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTokenizer, PreTrainedTokenizerBase

from services.embedding.hf import PreTrainedTokenizerFast

# CLIP's own pre-tokenizer (see transformers' CLIPTokenizer): words, digits, punctuation, then bytes.
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_CLIP_BOS, _CLIP_EOS, _CLIP_SUFFIX = "<|startoftext|>", "<|endoftext|>", "</w>"
_SIGLIP_PAD, _SIGLIP_EOS, _SIGLIP_UNK = "<pad>", "</s>", "<unk>"
# RoBERTa's specials in RoBERTa's order, so the ids are ClapTextConfig's defaults (bos 0, pad 1, eos 2).
_ROBERTA_BOS, _ROBERTA_PAD, _ROBERTA_EOS, _ROBERTA_UNK = "<s>", "<pad>", "</s>", "<unk>"

Merge = tuple[str, str]


def _normaliser() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )


def _words(corpus: Iterable[str], pre: pre_tokenizers.PreTokenizer) -> Counter[str]:
    norm = _normaliser()
    return Counter(w for text in corpus for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))


def learn_merges(words: Counter[str], suffix: str = "") -> list[Merge]:
    """BPE merges until every word is one symbol; ties go to the smallest pair, so the result is stable.

    >>> learn_merges(Counter({"aab": 2, "ab": 1}))
    [('a', 'b'), ('a', 'ab')]
    """
    seqs = {w: [*w[:-1], w[-1] + suffix] for w in words}
    merges: list[Merge] = []
    while True:
        pairs: Counter[Merge] = Counter()
        for word, seq in seqs.items():
            for pair in pairwise(seq):
                pairs[pair] += words[word]
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        seqs = {w: _apply(seq, best) for w, seq in seqs.items()}


def _apply(seq: list[str], merge: Merge) -> list[str]:
    out: list[str] = []
    for sym in seq:
        if out and (out[-1], sym) == merge:
            out[-1] += sym
        else:
            out.append(sym)
    return out


def _vocab(specials: list[str], merges: list[Merge], suffix: str) -> dict[str, int]:
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    symbols = [*specials, *alphabet, *([a + suffix for a in alphabet] if suffix else []),
               *(a + b for a, b in merges)]
    return {s: i for i, s in enumerate(dict.fromkeys(symbols))}


def clip_tokenizer(corpus: Iterable[str], *, max_length: int) -> CLIPTokenizer:
    """A CLIPTokenizer (CLIP's byte-level BPE, ``</w>`` word ends) with merges for the ``corpus`` words."""
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    merges = learn_merges(_words(corpus, pre), _CLIP_SUFFIX)
    vocab = _vocab([_CLIP_BOS, _CLIP_EOS], merges, _CLIP_SUFFIX)
    # transformers annotates merges as strings, but the tokenizers BPE it builds takes (left, right) pairs.
    pair_merges: Any = merges
    return CLIPTokenizer(vocab=vocab, merges=pair_merges, model_max_length=max_length)


def siglip_tokenizer(corpus: Iterable[str], *, max_length: int) -> PreTrainedTokenizerBase:
    """A SigLIP-style tokenizer: lower-cased BPE, ``</s>`` appended, padded with ``<pad>`` to max_length.

    Real SigLIP checkpoints ship a SentencePiece model; this one is a ``tokenizers`` BPE so it needs no
    sentencepiece package, and loads through AutoTokenizer all the same.
    """
    pre = pre_tokenizers.ByteLevel(add_prefix_space=True)
    merges = learn_merges(_words(corpus, pre))
    vocab = _vocab([_SIGLIP_PAD, _SIGLIP_EOS, _SIGLIP_UNK], merges, "")
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=_SIGLIP_UNK))
    bpe.normalizer = _normaliser()
    bpe.pre_tokenizer = pre
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.TemplateProcessing(
        single=f"$A {_SIGLIP_EOS}", special_tokens=[(_SIGLIP_EOS, vocab[_SIGLIP_EOS])]
    )
    tokenizer: PreTrainedTokenizerBase = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token=_SIGLIP_PAD, eos_token=_SIGLIP_EOS, unk_token=_SIGLIP_UNK,
        model_max_length=max_length,
    )
    return tokenizer


def clap_tokenizer(corpus: Iterable[str], *, max_length: int) -> PreTrainedTokenizerBase:
    """A RoBERTa-style tokenizer, as CLAP's text tower expects: ``<s> ... </s>``, padded with ``<pad>``.

    Lower-cased, with a prefix space (every word gets RoBERTa's ``Ġ`` mark, the first one too). It is a plain
    ``tokenizers`` pipeline rather than a RobertaTokenizer because that class rebuilds its pipeline when loaded
    and would drop the lower-casing.

    >>> tok = clap_tokenizer(["three short high beeps"], max_length=16)
    >>> tok.convert_ids_to_tokens(tok("Three SHORT high beeps")["input_ids"])
    ['<s>', 'Ġthree', 'Ġshort', 'Ġhigh', 'Ġbeeps', '</s>']
    """
    pre = pre_tokenizers.ByteLevel(add_prefix_space=True)
    merges = learn_merges(_words(corpus, pre))
    vocab = _vocab([_ROBERTA_BOS, _ROBERTA_PAD, _ROBERTA_EOS, _ROBERTA_UNK], merges, "")
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=_ROBERTA_UNK))
    bpe.normalizer = _normaliser()
    bpe.pre_tokenizer = pre
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.RobertaProcessing(
        (_ROBERTA_EOS, vocab[_ROBERTA_EOS]), (_ROBERTA_BOS, vocab[_ROBERTA_BOS]), trim_offsets=True,
        add_prefix_space=True,
    )
    tokenizer: PreTrainedTokenizerBase = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=_ROBERTA_BOS, eos_token=_ROBERTA_EOS, pad_token=_ROBERTA_PAD,
        unk_token=_ROBERTA_UNK, cls_token=_ROBERTA_BOS, sep_token=_ROBERTA_EOS, model_max_length=max_length,
    )
    return tokenizer
