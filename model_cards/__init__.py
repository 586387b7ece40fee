"""Jinja templates for Hub model cards; installed as the package data of `tl_hub.model_cards`."""
