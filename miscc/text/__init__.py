"""Text as the encoders read it: tokenising, the vocabulary and its fingerprint (``captions``), and a
user's sentence as the model reads it, unknown words dropped or refused (``user_captions``)."""
