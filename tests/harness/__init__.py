"""Test and benchmark tooling, outside the runtime packages: worker lanes, a ready-made catalogue, tiny models.

- lanes.py: a real `xmodal worker` subprocess on its own topics, group and collection;
- catalogue.py: the shapes sample written straight into the store (no Kafka, no worker);
- tiny_models.py: tiny random CLIP and SigLIP checkpoints for tests of the real loading path.
"""
