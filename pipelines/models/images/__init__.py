"""The image classifier's Transform and Trainer module files (one folder: TFX packages a module file's whole
folder)."""
