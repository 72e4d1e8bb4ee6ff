"""CTC decoders that fairseq-generate drives through ``AudioKdTask.build_generator``."""
