"""The shapes model: a small CLIP trained on generated coloured shapes, shipped so the demo and the tests run
offline (no hub download). ``XMODAL_SPACES__CLIP__NAME=builtin:shapes-clip`` (the default) loads it.

- world.py: the generator of its images and captions (seeded, with a held-out split);
- train.py: trains it (``python -m services.embedding.shapes.train`` rewrites clip/);
- quality.py: its retrieval quality on held-out images (what training prints and the tests check);
- clip/: the weights, tokenizer (made by services/embedding/vocab.py) and processor, saved with
  ``save_pretrained``, and training.json.
"""
