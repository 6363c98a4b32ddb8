"""The sentences that teach what each view shows (kept apart from layout code)."""

INTRO = """# TVLT Explorer
**TVLT** (Textless Vision-Language Transformer, Tang et al. 2022) reads a video's frames and its audio spectrogram as one
sequence of patches — no text, no speech recogniser. Load a clip, then look inside the model view by view."""

INPUTS = """Upload a video (with or without sound) or record one from your webcam; an audio file or microphone recording
*replaces* the video's sound track. Long media: choose the window to analyse (start and duration). The clip is decoded
once and reused by every view."""

PATCHES = """**What the model sees.** TVLT samples a few frames, resizes them, and cuts each into 16×16-pixel *patches*;
the sound becomes a log-mel spectrogram (time × mel-frequency bins, 512-sample hops at 44.1 kHz) cut into 16×16
patches too. Each patch becomes one *token*. The encoder reads one sequence: a **CLS** token, then every video patch
(frame by frame, row by row), then every audio patch (time step by time step, low to high frequency). Grey columns in
the spectrogram are padding, which the encoder ignores."""

MAE = """**Masked autoencoding (MAE).** During pretraining TVLT hides patches — 75 % of the video patches and 15 % of the
audio patches by default — and learns to fill them in from what is left. Choose how much to hide and how: video
*random* patches, *tube* (the same position in every frame) or whole *frames*; audio *patch*, *time* (whole time
columns, TVLT's default) or *frequency* bands. Click a patch in the video or spectrogram image to hide or reveal it.
Columns: original · masked input (striped grey = hidden) · reconstruction · reconstruction pasted under the visible
patches · per-patch error (brighter = worse; hidden patches only). The encoder only ever sees the visible tokens (and
CLS) — that is why MAE pretraining is cheap. To listen, a spectrogram has to be turned back into sound by Griffin-Lim,
which guesses the phase and adds its own blur: compare the reconstruction with the original spectrogram through the
same Griffin-Lim, not with the original recording."""

ATTENTION = """**Attention.** Each encoder layer lets every token look at every other; *heads* look in different ways.
The CLS token summarises the clip, so where CLS attends shows what the model relies on. *Rollout* multiplies the
layers' attention (with the residual path) to trace influence through the whole network. Cross-modal: click a time
column of the CLS spectrogram (or type a span, in seconds as on the Patches axis) to see which video patches that
sound attends to, or click a frame patch to see which sounds it listens to.
Attention is a hint about information flow, not an explanation."""

RETRIEVAL = """**Retrieval.** TVLT's pretraining also asks: *does this audio belong to this video?* (the matching head).
Here the query is an audio track and the gallery is a set of videos, ranked for it: a cheap embedding similarity
orders them all and the matching head re-scores the top few (captions say which score each got). ✓ marks the video
the audio came from. The swap experiment puts the audio of one clip on another: a model that matches sound to vision
should score the swapped pairs lower."""

SENTIMENT = """**Sentiment.** A copy of TVLT fine-tuned to rate sentiment on CMU-MOSEI's scale from −3 (very negative) to
+3 (very positive) — the bundled one learned it from this project's synthetic clips, so read it as a demonstration of
the mechanics, not as a judgement about real people. The 7 classes are the score's integer bins (−3 … +3) and positive means a score ≥ 0, the
MOSEI conventions. Confidences come from treating the prediction as a normal distribution around the predicted score
whose spread is the model's measured error (the RMSE stored with the checkpoint, 1.0 when unknown) — a calibration assumption,
not a second model. The bars show how the score moves when the video or the audio is hidden from the encoder."""

MODEL = """**The model.** Configuration, parameter counts and where the weights came from. Switch checkpoints with the
picker above (a local transformers-format directory, an original TVLT `.ckpt`, or a Hugging Face hub id) or with the
`TVLT_CHECKPOINT` environment variable at start-up."""
