"""The thin TRL trainer of UniRG: ``unirg train`` runs SFT or GRPO against the reward service.

Modules: ``config`` (YAML -> UniRG options + TRL config), ``data`` (ReXrank JSON / JSONL -> prompts and
TRL datasets), ``models`` (policy and processor loading), ``run`` (build and run a stage), ``cli``
(the command), ``tiny_models`` and ``toy_data`` (tiny models and a toy task for tests and the example).
Nothing is imported here, so ``unirg`` commands that do not train never load TRL or torch.
"""
