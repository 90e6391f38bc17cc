"""artalk_cli: the thin Typer front end over artalk_core."""
