"""mtapp: machine translation in PyTorch, every batching choice a small module whose cost is measured.

Commands are verbs, each `python -m mtapp.<verb>` (or `mtapp-<verb>`): train, translate, evaluate,
report, serve, export, average, data, bench; the configs they read live in the top-level configs/.
The library modules are nouns:

    config, specials          typed config sections, every default and its meaning; special tokens
    rundir                    the run-directory format: file names, log.jsonl, eval/ files
    data/, tokenization       corpora read into Arrow, encoded and cached; SentencePiece
    batching/                 Batch, collate, one module per sampling strategy, inference batches
    models/, loss             the Seq2Seq interface (Transformer, LSTM, hybrid); label-smoothed loss
    trainer, progress         Trainer, the update loop; progress, epoch statistics, stop signals
    checkpoint, averaging     full training state saved atomically; checkpoint averaging
    distributed, runtime      the torchrun group and DDP; device, precision, threads, memory
    search, translator        batched greedy and beam search; text in, text out
    sentences                 a line split into its sentences (sentencex)
    inference                 a trained model (checkpoint or export) loaded once, for every command
    api                       the server's request and response models; LibreTranslate's form
    scoring, ct2, argos       sacreBLEU metrics with signatures; the CTranslate2 engine; Argos packages
"""
