"""Keras side of the Fortran-Keras Bridge: model files, conversion, emulators.

``emulators.modelfile`` reads and writes FKB model files with NumPy only;
``emulators.convert`` (imports Keras) converts between Keras and model files.
"""
