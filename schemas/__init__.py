"""xmodal contracts: the asset event and the dead letter. Imports nothing of ours."""
