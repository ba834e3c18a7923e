"""The thin TRL trainer of UniRG: ``unirg train`` runs SFT or GRPO against the reward service.

Modules: ``config`` (YAML -> UniRG options + TRL config), ``data`` (ReXrank JSON / JSONL -> prompts and
TRL datasets), ``models`` (policy and processor loading), ``run`` (build and run a stage), ``cli``
(the command) and ``toy_data`` (a toy task for tests and the example; its tiny models are built by
``unirg_testing.qwen2`` at the repository root).
Nothing is imported here, so ``unirg`` commands that do not train never load TRL or torch.
"""
