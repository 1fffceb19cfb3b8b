"""The sounds model: a small CLAP trained on generated sounds, shipped so audio search runs offline (no hub
download). ``builtin:sounds-clap`` loads it (a `services.embedding.clap.ClapEmbedder`, audio + text).

- world.py: the generator of its clips and captions (seeded, with a held-out split);
- train.py: trains it (``python -m services.embedding.sounds.train`` rewrites clap/);
- quality.py: its retrieval quality on held-out clips (what training prints and the tests check);
- clap/: the weights, tokenizer (made by services/embedding/vocab.py) and processor, saved with
  ``save_pretrained``, and training.json.
"""
