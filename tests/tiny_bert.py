"""A tiny BERT teacher for tests: a WordPiece vocabulary trained by ``tokenizers`` and a 2-layer BertConfig."""
import os

import torch
from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizer


def save_tiny_bert(out_dir, texts, with_mlm_head=True, vocab_size=250, max_positions=64):
    """A 2-layer BERT (hidden 32) with a WordPiece vocabulary trained by ``tokenizers`` on ``texts``, saved with
    ``save_pretrained`` (a ``BertModel`` without MLM head when ``with_mlm_head`` is False)."""
    from tokenizers import BertWordPieceTokenizer

    os.makedirs(out_dir, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.save_model(str(out_dir))
    tokenizer = BertTokenizer(vocab=os.path.join(out_dir, "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) <= vocab_size and tokenizer.unk_token_id not in tokenizer(texts[0])["input_ids"]
    tokenizer.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions,
                        pad_token_id=tokenizer.pad_token_id)
    (BertForMaskedLM if with_mlm_head else BertModel)(config).save_pretrained(out_dir)
    return str(out_dir)


def corpus_teacher(corpus, out_dir):
    """A tiny BERT (with MLM head) whose vocabulary covers every transcript of the ``corpus`` fixture."""
    texts = []
    for split in ("train", "valid", "test"):
        with open(os.path.join(corpus, f"{split}.wrd"), encoding="utf-8") as f:
            texts += f.read().split("\n")[:-1]
    return save_tiny_bert(out_dir, texts)
