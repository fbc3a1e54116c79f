"""Stage 2: the temporal video diffusion network (photo + controls -> frames)."""
