"""zeroseg: segment anything, name anything."""
__version__ = "0.1.0"
