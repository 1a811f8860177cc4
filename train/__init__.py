"""Training recipes (SFT + GRPO) that produce R-Log and R-Log-fast; built on the model contract in rlog.contract."""
