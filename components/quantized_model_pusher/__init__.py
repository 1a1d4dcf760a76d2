"""The Pusher gate: ``QuantizedModelPusher`` (atomic publish + manifest) on top of TFX's Pusher executor."""
