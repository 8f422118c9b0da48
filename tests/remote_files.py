"""Reading files back through tf.io.gfile (for outputs written to the `remote_dir` fixture)."""


def read(path: str, mode: str = "r"):
    """The whole content of `path` (text, or bytes with mode 'rb')."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, mode) as handle:
        return handle.read()
