"""The Gradio app's pieces: one module per view (layout, wiring, typed handlers), plot builders, settings.

`settings` must be imported before gradio (it sets GRADIO_TEMP_DIR and turns analytics off).
"""
