"""Quiet by default: the console gets this project's messages, the log file everything."""
import logging
import warnings

from data.logs import setup_logging


def test_console_is_quiet_and_the_file_has_everything(tmp_path, capsys):
    log_file = setup_logging(tmp_path / "run.log")
    try:
        logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
        logging.getLogger("rgcn.training").info("epoch 1: dev F1 50.00")
        logging.getLogger("rgcn.training").debug("resolved config: {...}")
        logging.getLogger("some.library").warning("chatty warning")
        with warnings.catch_warnings():           # shown even if this location warned before
            warnings.simplefilter("always")
            warnings.warn("`torch.jit.script` is deprecated", FutureWarning)
        err = capsys.readouterr().err
        assert err.strip().splitlines() == ["epoch 1: dev F1 50.00"]
        text = log_file.read_text()
        for line in ("epoch 1: dev F1 50.00", "resolved config", "chatty warning", "jit.script"):
            assert line in text
        setup_logging(tmp_path / "run.log", verbose=True)              # -v: everything on the console too
        logging.getLogger("some.library").warning("chatty warning")
        logging.getLogger("rgcn.training").debug("resolved config: {...}")
        err = capsys.readouterr().err
        assert "warning: chatty warning" in err and "resolved config" in err
    finally:
        setup_logging(None)
        logging.captureWarnings(False)
