"""Data: the tasks (XNLI, PAWS-X), their examples from the hub, a local directory or a seeded generator, the
tokenizer, and the tokenized evaluation set with the batches cut from it."""
