"""Training recipes (SFT + GRPO) that produce R-Log and R-Log-fast; built on rlog.prompts."""
