"""Datasets: Hub ids, local directories and tl_hub's synthetic traffic signs, as canonical tensors.

Submodules are imported where used: `tl_hub.data.synthetic` and `tl_hub.data.gtsrb` need no `datasets`
(the Space renders its example signs with them), `tl_hub.data.loading` does.
"""
