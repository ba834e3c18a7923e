"""UniRG: the reward service, its clients and the trainer, over one bottom layer of shared helpers."""
