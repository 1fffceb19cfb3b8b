"""The shapes model: a small CLIP trained on generated coloured shapes, shipped so the demo and the tests run
offline (no hub download). ``XMODAL_MODEL__NAME=builtin:shapes-clip`` (the default) loads it.

- world.py: the generator of its images and captions (seeded, with a held-out split);
- train.py: trains it (``python -m services.embedding.shapes.train`` rewrites clip/);
- quality.py: its retrieval quality on held-out images (what training prints and the tests check);
- vocab.py: the tokenizers of the models xmodal makes itself;
- clip/: the weights, tokenizer and processor, saved with ``save_pretrained``, and training.json.
"""
