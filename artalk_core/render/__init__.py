"""Rendering a motion: ``stage.py`` is the `artalk render` / `artalk mux` step (motion -> frames ->
video); ``mesh/`` draws the FLAME mesh (moderngl EGL, optional pytorch3d); ``avatar/`` draws the
photoreal GAGAvatar head (Gaussians + StyleUNet)."""
