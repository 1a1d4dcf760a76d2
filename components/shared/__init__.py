"""Code two or more components run: the names of their contract, the input path, the model runners, staging.

Imports no component folder (``components.<component>``): components import this package, never the reverse.
"""
