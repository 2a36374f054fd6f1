"""Training: the recipe (one function of small steps), the loop pieces, method application
(LoRA/QLoRA/full/freeze), callbacks, merge and the job card."""
