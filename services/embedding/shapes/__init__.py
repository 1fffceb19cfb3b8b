"""The shapes models: two CLIPs trained on generated coloured shapes, shipped so the demo and the tests run
offline (no hub download). ``XMODAL_SPACES__CLIP__NAME=builtin:shapes-clip`` (the default) loads the small
retrieval model; ``builtin:shapes-clip-large`` is its larger sibling, the demo's re-ranking model.

- world.py: single filled shapes, their images and captions (seeded, with a held-out split);
- scenes.py: the harder world: sizes, outlines, two things and their relation, textured grounds, and the
  truth of a caption about a scene (the relevance of the demo's labelled sets);
- train.py: trains either (``python -m services.embedding.shapes.train [--size large]`` rewrites clip/ or
  clip_large/);
- quality.py: retrieval quality on held-out images and scenes (what training prints and the tests check);
- clip/, clip_large/: weights, tokenizer (made by services/embedding/vocab.py) and processor, saved with
  ``save_pretrained``, and training.json.
"""
