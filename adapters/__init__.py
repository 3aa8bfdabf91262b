"""Weight adapters on a frozen model (LoRA): low-rank updates of the decoder linears, merged or kept apart for
inference. Not a prompt method: nothing is added to the sequence or the attention's keys; never times anything."""
