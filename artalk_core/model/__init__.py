"""The ARTalk neural motion model (PyTorch): config, modules, checkpoint loading.

Import submodules directly (``artalk_core.model.checkpoint``...); this package imports nothing heavy.
"""
