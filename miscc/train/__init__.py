"""Training: the loop skeleton both trainers share (``loop``: run folder, components, resume,
loader, epochs), GAN training and its ``step`` (``gan``), mixed precision (``precision``), DAMSM
pretraining (``damsm``), and the loss terms as functions of tensors (``losses``)."""
